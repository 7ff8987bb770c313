"""captum_simec: singular pullback-metric geometry for PyTorch models, in Captum terms."""
