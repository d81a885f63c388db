"""Pipeline layers, one module per processor; each holds ``CONTRACT`` (glinker.contract.LayerContract:
its config model, input sockets, output) and ``build(config, setup)``.

Layers depend only on glinker's public types and helpers, never on one another.
"""
