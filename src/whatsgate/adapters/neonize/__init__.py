"""The neonize (whatsmeow) WhatsApp engine.

This package's ``__init__`` imports nothing from neonize: importing neonize starts a Go runtime
and a log thread and changes logging, so it happens only when ``engine`` is imported, i.e. when
the neonize engine is chosen::

    from whatsgate.adapters.neonize.engine import NeonizeEngine
"""
