"""The public face of the runtime: the parts `Engine` (runtime/engine.py) is made of, one
concern a module, so that no one file holds the whole Python API; and what it shows of
runs (view.py: runs, steps, letters, limits and workers as JSON; trace.py: what an event
or a run set in motion).

Users see only `Engine`: these classes are not exported, and each part subclasses
`EngineBase` (base.py) so that it is typed against the one store, advancer and
transaction helper an engine shares, not against a copy of their signatures.
"""
