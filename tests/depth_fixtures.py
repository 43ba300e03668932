"""Small on-disk depth datasets for tests: NYU split files, NYU mmseg folders, KITTI Eigen, a plain folder."""
from __future__ import annotations

import os
import shutil

import cv2
import numpy as np

from densedino.datasets import SceneConfig, write_kitti, write_nyu

NYU_SIZE = (48, 64)
KITTI_SIZE = (40, 136)


def write_nyu_split(root: str, *, num_train: int = 4, num_test: int = 2, size: tuple = NYU_SIZE) -> str:
    """NYU split-file layout (``nyu_train.txt``, ``nyu_test.txt``) from the scene generator; returns the root."""
    return write_nyu(os.path.join(root, 'nyu'), num_train=num_train, num_test=num_test,
                     config=SceneConfig(image_size=size))


def write_kitti_split(root: str, *, num_train: int = 2, num_test: int = 3, size: tuple = KITTI_SIZE,
                      no_gt_lines: int = 1) -> str:
    """KITTI Eigen layout; the last ``no_gt_lines`` test lines get GT 'None' (as 45 of the official 697 do)."""
    data_root = write_kitti(os.path.join(root, 'kitti'), num_train=num_train, num_test=num_test,
                            config=SceneConfig.outdoor(image_size=size))
    if no_gt_lines:
        path = os.path.join(data_root, 'kitti_eigen_test.txt')
        with open(path) as f:
            lines = f.read().splitlines()
        for i in range(len(lines) - no_gt_lines, len(lines)):
            rgb, _, focal = lines[i].split()
            lines[i] = f'{rgb} None {focal}'
        with open(path, 'w') as f:
            f.write('\n'.join(lines) + '\n')
    return data_root


def write_nyu_mmseg_folder(root: str, *, num_train: int = 3, num_test: int = 2, size: tuple = NYU_SIZE) -> str:
    """NYU in mmseg's layout, named as its converter does (``scene/rgb_00001.jpg`` -> ``scene_00001.jpg``)."""
    src = write_nyu(os.path.join(root, 'nyu_src'), num_train=num_train, num_test=num_test,
                    config=SceneConfig(image_size=size))
    data_root = os.path.join(root, 'nyu_mmseg')
    for split in ('train', 'test'):
        os.makedirs(os.path.join(data_root, 'images', split))
        os.makedirs(os.path.join(data_root, 'annotations', split))
        with open(os.path.join(src, f'nyu_{split}.txt')) as f:
            for line in f:
                rgb, depth, _ = line.split()
                shutil.copy(os.path.join(src, rgb),
                            os.path.join(data_root, 'images', split, rgb.replace('/rgb', '')))
                shutil.copy(os.path.join(src, depth),
                            os.path.join(data_root, 'annotations', split, depth.replace('/sync_depth', '')))
    return data_root


def write_depth_folder(root: str, *, num: int = 3, size: tuple = (30, 44), seed: int = 0) -> str:
    """Plain folder: ``images/{sub/}frame_i.png``, ``depth/{sub/}frame_i.png`` (uint16, ~30% zeros).

    One pair lives in a subfolder to exercise recursive pairing; returns the root.
    """
    rng = np.random.default_rng(seed)
    data_root = os.path.join(root, 'folder')
    for i in range(num):
        rel = f'sub/frame_{i}' if i == num - 1 else f'frame_{i}'
        img = rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)
        depth = rng.integers(1, 20000, size=size).astype(np.uint16)
        depth[rng.random(size) < 0.3] = 0
        for folder, array in (('images', img), ('depth', depth)):
            path = os.path.join(data_root, folder, rel + '.png')
            os.makedirs(os.path.dirname(path), exist_ok=True)
            assert cv2.imwrite(path, array)
    return data_root
