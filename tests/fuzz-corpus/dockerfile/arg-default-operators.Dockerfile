FROM ${X:-busybox} AS only
RUN echo ${Y:+yes}
