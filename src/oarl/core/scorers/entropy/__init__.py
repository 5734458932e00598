"""Entropy credit: GTPO's entropy-weighted token rewards (``gtpo``) and the 80/20 rule's high-entropy minority
(``high_entropy``); ``tokens`` holds the one forward they (and ``stare``, ``prime``, ``cdpo``) read."""
