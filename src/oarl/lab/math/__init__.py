"""The math path: local GSM8K / MATH500 data, prompt templates, math-verify rewards, answer checking and
pass@k evaluation."""
