"""Photos and drawings of digits -> 28x28 MNIST-style arrays, with no Keras inside.

`load_digit(path)` is the one entry point: it reads any image file PIL can
decode (within a pixel limit), takes out the desk, the ruled lines and the
paper's shading, and returns the digit as MNIST made its own (white on black,
fit into 20x20, centred by mass in 28x28, uint8). `predict` calls it; the
network never sees a photo. `to_mnist(grey)` does the same from a grey array.
"""

from hw1_keras.photos.images import load_digit, read_image, to_mnist

__all__ = ["load_digit", "read_image", "to_mnist"]
