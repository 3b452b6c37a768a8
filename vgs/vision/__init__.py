"""Vision stage: R-CNN-style region proposals and CNN region features (EfficientNet-Lite stands in
for the paper's R-CNN/VGG, whose weights are not available offline)."""
