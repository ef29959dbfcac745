"""Mask R-CNN (matterport's API and layer names) in Keras 3."""
