"""datumflow kfp_components."""
