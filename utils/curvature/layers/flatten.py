"""Flatten: (b, C, H, W) -> (b, C*H*W)."""
from utils.curvature.layers.base import ParameterFree


class Flatten(ParameterFree):

    def __init__(self, module, weight=None, bias=None):
        if (module.start_dim, module.end_dim) != (1, -1):
            raise ValueError("the layered engine supports Flatten(start_dim=1, end_dim=-1) only")
        super().__init__(module, weight, bias)

    def forward(self, a, W, b):
        return a.flatten(1), a.shape

    def backward(self, in_shape, g, W):
        return g.reshape(*g.shape[:-1], *in_shape[1:])

    def tangent(self, in_shape, da, W, dW, db):
        return da.reshape(*da.shape[:2], -1)
