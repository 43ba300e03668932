"""Small on-disk segmentation datasets written by tests (ADE20K layout)."""
import os

import cv2
import numpy as np


def write_ade20k_folder(root, *, num_train=6, num_val=3, size=(56, 84), seed=0):
    """ADE20K-layout folder with blob scenes; labels use 0 ('other') and classes 1..5.

    Each class has its own colour so a tiny model can learn it; label 0 appears in every image.
    """
    rng = np.random.default_rng(seed)
    colours = rng.integers(0, 255, size=(6, 3))
    data_root = os.path.join(root, 'ADEChallengeData2016')
    for split, prefix, n in (('training', 'train', num_train), ('validation', 'val', num_val)):
        os.makedirs(os.path.join(data_root, 'images', split), exist_ok=True)
        os.makedirs(os.path.join(data_root, 'annotations', split), exist_ok=True)
        for i in range(n):
            label = np.zeros(size, np.uint8)
            for _ in range(4):
                cls = int(rng.integers(1, 6))
                y, x = rng.integers(0, size[0] - 12), rng.integers(0, size[1] - 12)
                h, w = rng.integers(8, 24, size=2)
                label[y:y + h, x:x + w] = cls
            img = colours[label].astype(np.float32) + rng.normal(0, 8, size=(*size, 3))
            stem = f'ADE_{prefix}_{i + 1:08d}'
            cv2.imwrite(os.path.join(data_root, 'images', split, stem + '.jpg'),
                        np.clip(img, 0, 255).astype(np.uint8)[..., ::-1])
            cv2.imwrite(os.path.join(data_root, 'annotations', split, stem + '.png'), label)
    return data_root
