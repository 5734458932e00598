"""The math path: local GSM8K / MATH500 data, prompt templates, answer checking and pass@k evaluation.

Its math-verify rewards and answer checks (``rewards``, ``mathcheck``) need the ``math`` extra
(``pip install "oarl[math]"``); the rest needs the lab's (``generate_completions`` serves the testbed too).
"""
