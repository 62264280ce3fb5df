"""Uncompiled train steps replayed as CUDA graphs under ``DistributedDataParallel``, against the same DDP steps run
eagerly, in a process group of one rank on CUDA (skipped without a GPU or NCCL).

Why: DDP reduces each gradient from a hook on the parameter's accumulation, which a replayed backward reaches as an
eager one does; with ``gradient_as_bucket_view`` the gradients are views of DDP's buckets, into which a replay's
gradients are copied. A capture's warm-up step must fire no hook (it takes its gradients with
``torch.autograd.grad``), else DDP would reduce a step twice and raise.
"""
import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from mlla_mm import MLLA
from mlla_mm.models.fast import compile as compiling
from mlla_mm.models.fast import eager_graphs
from replay_checks import ARCH, rel

pytestmark = pytest.mark.skipif(not (torch.cuda.is_available() and dist.is_nccl_available()),
                                reason='needs CUDA and NCCL')


class Segmenter(nn.Module):
    """The backbone and a 1x1 convolution on each of its outputs: a model whose every parameter gets a gradient."""

    def __init__(self, uncompiled_graphs: int):
        super().__init__()
        self.backbone = MLLA(ARCH, attn_impl='auto', drop_path_rate=0.,
                             fast_cfg=dict(strict=True, uncompiled_graphs=uncompiled_graphs))
        self.heads = nn.ModuleList(nn.Conv2d(c, 3, 1) for c in (32, 64, 128, 256))

    def forward(self, x):
        return [head(out) for head, out in zip(self.heads, self.backbone(x))]


@pytest.fixture
def one_rank_group(tmp_path):
    store = dist.FileStore(str(tmp_path / 'store'), 1)
    dist.init_process_group('nccl', store=store, rank=0, world_size=1, device_id=torch.device('cuda', 0))
    yield
    dist.destroy_process_group()


@pytest.mark.parametrize('bucket_view', [False, True])
def test_replayed_ddp_steps_match_eager_ddp_steps(one_rank_group, bucket_view):
    """AdamW steps through DDP at one size (captured at the third), one at another size, then the first again:
    the losses at every step, then the weights and BatchNorm statistics, as the eager DDP model's."""
    compiling.reset()
    torch.manual_seed(0)
    graphed, eager = Segmenter(uncompiled_graphs=1).cuda(), Segmenter(uncompiled_graphs=0).cuda()
    eager.load_state_dict(graphed.state_dict())
    models = [DistributedDataParallel(m, device_ids=[0], gradient_as_bucket_view=bucket_view)
              for m in (graphed, eager)]
    optimizers = [torch.optim.AdamW(m.parameters(), lr=1e-3) for m in models]
    sizes = [(128, 160)] * 5 + [(96, 160), (128, 160)]
    for step, size in enumerate(sizes):
        x = torch.randn(2, 3, *size, device='cuda')
        losses = []
        for model, optimizer in zip(models, optimizers):
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast('cuda', dtype=torch.float16):
                outs = model(x)
            loss = sum(o.float().square().mean() for o in outs)
            loss.backward()
            optimizer.step()
            losses.append(loss.detach())
        assert rel(*losses) < 1e-3, step
    for (name, a), b in zip(graphed.state_dict().items(), eager.state_dict().values()):
        assert (a == b).all() if name.endswith('num_batches_tracked') else rel(a, b) < 1e-3, name
    assert len(eager_graphs._GRAPHS[graphed.backbone].graphs) == 1
    assert not compiling.COMPILED and not compiling.FAILED
