"""``glinker serve``: an HTTP linking service with dynamic micro-batching (``pip install -e ".[serve]"``)."""
