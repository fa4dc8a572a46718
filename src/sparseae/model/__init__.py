"""The mathematics: the autoencoder's cost and gradient, L-BFGS, gradient checks,
the stacked network."""
