"""The engine: objectives, parameterizations, transforms, views, the render loop and optimizers.

Nothing here knows a method or a paper's preset: those are in ``preimage.methods``.
"""
