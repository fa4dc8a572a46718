"""What a trained model shows: diagnostics, evaluation, figures."""
