"""Speech emotion recognition: preprocessing, features, the HSF + CRNN network, training and artifacts."""
