"""Pipeline layers, one module per processor; each exposes ``build(node, config, runtime)``.

Layers depend only on glinker's public types and helpers, never on one another.
"""
