"""The training harness: packaged tasks and models, a resumable multi-process loop, eval, predict and merge.

Method code never imports this package; this package composes the library's pieces into workflows.
"""
