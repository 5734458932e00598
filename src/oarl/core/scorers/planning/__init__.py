"""Planning credit: HICRA's amplified advantage on the planning ("strategic gram") tokens (``hicra``)."""
