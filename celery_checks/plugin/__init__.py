"""The contract every check keeps, written once.

- :mod:`.policy`    states, exit codes, CheckError (UNKNOWN) and Unreachable (CRITICAL)
- :mod:`.cli`       the parser, option types, shared and broker/store options
- :mod:`.runner`    the run's Deadline, run() under the status policy, guarded()
- :mod:`.resource`  a Resource that acquires facts, then yields metrics; items
                    looked up exactly
- :mod:`.contexts`  one threshold evaluation (Threshold), one fixed-state rule (Condition)
- :mod:`.summary`   the status line and long output every check shares
- :mod:`.perfdata`  labels, numbers, durations and counts in words
- :mod:`.secrets`   passwords masked by URL structure in everything printed
"""
