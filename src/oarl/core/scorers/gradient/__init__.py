"""The gradient family: one or a few backward passes through the input embeddings instead of masked copies.

``oar_g`` (OAR-G, the paper's noised-embedding gradient), ``variants`` (its noise relative to the embedding
scale, or averaged over draws), ``linearized`` (OAR-P's replacement to first order), ``path`` (integrated
gradients from the masked sequence).
"""
