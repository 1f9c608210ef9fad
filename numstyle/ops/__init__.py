"""Forward/backward op pairs, one file per family.

Each ``*_forward`` returns ``(out, cache)``; the matching ``*_backward`` takes
``(dout, cache)`` and returns the gradients of its inputs. Each vectorised
kernel has a loop-based ``*_naive`` twin that the tests compare against.
"""
