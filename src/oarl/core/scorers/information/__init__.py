"""Information credit: how much each prefix raises the probability of an answer (a model forward per copy)."""
