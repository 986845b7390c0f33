import numpy as np


def build():
    return np.ones((1000, 1000))  # MARK:ONES


a = build()  # MARK:BUILD
print(a.shape)
