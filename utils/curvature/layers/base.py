"""The shared shape of a layer rule (the contract is in ``utils.curvature.layers``)."""


class Rule:
    """A layer module and the names of its weight and bias in the flat parameter vector
    (None for a parameter-free layer or a layer without bias)."""

    parametrised = False

    def __init__(self, module, weight=None, bias=None):
        self.module, self.weight, self.bias = module, weight, bias


class ParameterFree(Rule):
    """A layer without parameters, linear in its input once the primal pass has fixed its
    mask or arg-max: the tangent of its cotangent is its backward map applied to the block."""

    def reverse(self, saved, dg, g, W, dW):
        return self.backward(saved, dg, W)
