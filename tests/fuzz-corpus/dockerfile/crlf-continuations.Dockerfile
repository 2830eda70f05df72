FROM busybox AS a
RUN echo \
  x
FROM a AS b
COPY --from=a /a /b
