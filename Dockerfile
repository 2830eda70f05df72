# syntax=docker/dockerfile:1
# The example stack: three deployable targets (api, sidecar, nginx) over a
# shared `base` stage, plus an `assets` stage that only nginx copies from.
# Tests build it with --build-arg BASE=stackbake-test/busybox:latest.
# It needs BuildKit (stackbake's default builder): api's RUN has a cache mount.
ARG BASE=busybox:1.36.1

FROM ${BASE} AS base
RUN mkdir -p /srv/bin /srv/www \
 && echo "base stage ran" > /srv/base.txt
COPY app/shared/ /srv/shared/

FROM base AS assets
COPY app/assets/ /srv/assets/
RUN cp -r /srv/assets /srv/www/static

FROM base AS api
ARG API_GREETING=hello
COPY app/api/ /srv/api/
# A cache mount: /root/.cache outlives the build (BuildKit keeps it between
# builds, as a package manager's download cache) and is never in the image.
RUN --mount=type=cache,target=/root/.cache \
    echo "${API_GREETING} from api" > /srv/api/greeting.txt \
 && echo "api built" >> /root/.cache/builds.log
EXPOSE 8080
CMD ["httpd", "-f", "-p", "8080", "-h", "/srv/api"]

FROM base AS sidecar
COPY app/sidecar/run.sh /srv/sidecar/run.sh
CMD ["sh", "/srv/sidecar/run.sh"]

FROM base AS nginx
COPY --from=assets /srv/www/static /srv/www/static
COPY app/nginx/ /srv/www/
EXPOSE 80
CMD ["httpd", "-f", "-p", "80", "-h", "/srv/www"]
