"""Verify Line domain: roster, encounters, call log, supervisor selection, the call state machine.

Nothing here knows about ARI or Flask: the ARI adapter (``ari_app``) and the console (``ivr.web``)
drive the domain through the ports declared in :mod:`ivr.telephony`.
"""
