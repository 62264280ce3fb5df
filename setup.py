"""mlla-mm: the MLLA backbone for OpenMMLab (mmdet / mmseg).

mmcv 2.1.0 is a dependency that pip cannot install by itself (PyPI has its source only, and it must be built
against the installed torch with its ops): `make test` / `make demo` build it through tools/install_mmcv.sh.
It is still declared, so that pip reports it when it is missing.
"""
import os

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))

setup(
    name='mlla-mm',
    version='0.1.0',
    description='MLLA (Mamba-Like Linear Attention) backbone for OpenMMLab detection and segmentation',
    long_description=open(os.path.join(HERE, 'README.md'), encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    python_requires='>=3.10',
    packages=find_packages(include=['mlla_mm', 'mlla_mm.*']),
    install_requires=[
        'torch>=2.6',  # the safe checkpoint loader builds on the weights_only allowlist and get_safe_globals
        'torchvision',
        'timm>=1.0',
        'mmengine==0.10.7',
        'mmcv==2.1.0',
        'numpy',
        'setuptools>=77.0.3,<82',
    ],
    extras_require={
        'det': ['mmdet==3.3.0', 'pycocotools'],
        # ONNX export (tools/deployment/): torch.onnx's exporter needs onnx and onnxscript, ONNX Runtime runs the check
        'deploy': ['onnx>=1.23,<2', 'onnxscript>=0.7,<1', 'onnxruntime>=1.32,<2'],  # requirements/deploy.txt pins
        'seg': ['mmsegmentation==1.2.2', 'ftfy', 'regex'],
        'tests': ['pytest>=8'],
    },
    license='Apache-2.0',
)
