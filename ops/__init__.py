"""Operations and the command line: the lab (Asterisk in its chroot, PIDs, configuration
rendering), the app's supervisor and the ``verifyline`` CLI. Uses the domain (:mod:`ivr`) and
starts the ARI adapter (:mod:`ari_app`); neither imports this package."""
