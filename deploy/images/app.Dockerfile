# The ARI app and the console (one image, two services): a Debian 12 base with python3 and the
# project's wheel installed at build time into /opt/verifyline (deploy/images/build.sh builds the
# wheels first; nothing is fetched here, and nothing is installed when a container starts).
ARG DEBIAN_BASE=verifyline/debian-base
FROM ${DEBIAN_BASE}
# the app shares the spool and the recordings with Asterisk: it runs as Asterisk's uid (the
# asterisk user of Debian's package in the Asterisk image), so each can read what the other wrote
ARG VERIFYLINE_UID=101
COPY wheels/ /tmp/wheels/
RUN python3 -m venv /opt/verifyline \
    && /opt/verifyline/bin/pip install --no-index --no-cache-dir --disable-pip-version-check \
        --find-links /tmp/wheels verifyline \
    && rm -rf /tmp/wheels \
    && groupadd --system verifyline \
    && useradd --system --uid "$VERIFYLINE_UID" --gid verifyline --home-dir /var/lib/verifyline \
        --shell /usr/sbin/nologin verifyline \
    && mkdir -p /var/lib/verifyline/spool /var/lib/verifyline/journal \
        /var/spool/asterisk/recording /etc/asterisk \
    && chown -R verifyline /var/lib/verifyline /var/spool/asterisk/recording /etc/asterisk
ENV PATH=/opt/verifyline/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    VERIFYLINE_HOME=/var/lib/verifyline \
    PYTHONUNBUFFERED=1
WORKDIR /var/lib/verifyline
USER verifyline
CMD ["verifyline", "serve"]
