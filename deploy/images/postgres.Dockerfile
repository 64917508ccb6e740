# PostgreSQL for Verify Line without a registry: Debian 12's postgresql from the Debian base.
# postgres-entrypoint creates the cluster, the verifyline role and database on first start.
ARG DEBIAN_BASE=verifyline/debian-base
FROM ${DEBIAN_BASE}
COPY postgres-entrypoint /usr/local/bin/postgres-entrypoint
RUN for f in /usr/lib/postgresql/*/bin/*; do ln -sf "$f" /usr/local/bin/; done \
    && chmod 0755 /usr/local/bin/postgres-entrypoint \
    && mkdir -p /var/lib/postgresql/data /run/postgresql \
    && chown postgres:postgres /var/lib/postgresql/data /run/postgresql \
    && chmod 0700 /var/lib/postgresql/data
USER postgres
ENV PATH=/usr/local/bin:/usr/bin:/bin
CMD ["/usr/local/bin/postgres-entrypoint"]
