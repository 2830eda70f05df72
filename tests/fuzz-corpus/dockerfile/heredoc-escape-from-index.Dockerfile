# escape=`
ARG BASE=busybox
FROM ${BASE} AS s0
RUN <<EOF
echo "heredoc $X" `
EOF
FROM scratch AS s1
COPY --from=0 /x /y
FROM s0 AS api
RUN --mount=type=bind,from=1,target=/t echo a `
  # comment inside a continuation
  && echo b
COPY <<-'EOT' /etc/x
	body
	EOT
