# Asterisk 22 for Verify Line: the lab's Debian sid chroot (imported by deploy/images/build.sh)
# plus our prompts and the container's asterisk.conf. The configuration in /etc/asterisk is
# rendered at start by the compose file's asterisk-config service (`verifyline lab config`),
# since it holds the site's ports and secrets, which belong to no image.
ARG ASTERISK_BASE=verifyline/asterisk-base
FROM ${ASTERISK_BASE}
# sounds/en is a symlink (Debian alternatives): COPY follows it inside the image
COPY prompts/ /usr/share/asterisk/sounds/en/verifyline/
COPY asterisk.conf /etc/verifyline-asterisk/asterisk.conf
COPY asterisk-healthy /usr/local/bin/asterisk-healthy
# Asterisk runs as Debian's asterisk user (the app's image runs as the same uid)
RUN mkdir -p /etc/asterisk /var/spool/asterisk/recording /var/lib/verifyline/spool \
        /var/log/asterisk /run/asterisk /var/cache/asterisk /var/lib/asterisk \
    && chown -R asterisk:asterisk /etc/asterisk /var/spool/asterisk /var/lib/verifyline \
        /var/log/asterisk /run/asterisk /var/cache/asterisk /var/lib/asterisk \
    && chmod 0755 /usr/local/bin/asterisk-healthy
USER asterisk
ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin
CMD ["/usr/sbin/asterisk", "-f", "-n", "-C", "/etc/verifyline-asterisk/asterisk.conf"]
