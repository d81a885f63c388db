"""Bulk jobs: ``glinker link`` (local or Ray engine), ``glinker eval`` and ``glinker render``.

Modules are imported on use: :mod:`.runner` (local engine, checkpoints), :mod:`.ray_engine`,
:mod:`.evaluate` (metrics as pure functions), :mod:`.render`.
"""
