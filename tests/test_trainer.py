"""The shared accelerate trainer: loss falls, checkpoints resume bit-exactly."""
import torch

from soundstage.training.trainer import TrainConfig, Trainer, lr_lambda


def _data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]) + 0.1
    return [(x[i : i + 8], y[i : i + 8]) for i in range(0, n, 8)]


def _loss(model, batch):
    x, y = batch
    loss = torch.nn.functional.mse_loss(model(x), y)
    return loss, {}


def test_loss_falls_and_checkpoints(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    cfg = TrainConfig(out_dir=str(tmp_path), steps=40, lr=5e-2, save_every=20, log_every=10)
    hist = Trainer(model, _loss, cfg).fit(_data())
    assert hist[-1]["loss"] < 0.2 * hist[0]["loss"]
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*")) == ["checkpoint-20", "checkpoint-40"]
    assert (tmp_path / "log.jsonl").read_text().count("\n") == 4


def test_resume_continues_identically(tmp_path):
    def run(stop_at, out, resume):
        torch.manual_seed(0)
        model = torch.nn.Linear(4, 1)
        cfg = TrainConfig(out_dir=str(out), steps=20, lr=1e-2, save_every=100, schedule="linear")
        t = Trainer(model, _loss, cfg)
        if resume:
            assert t.resume()
        t.fit(_data(n=8), stop_at=stop_at)  # one batch: data order cannot differ between the runs
        return t.unwrapped().weight.detach().clone(), t.step

    straight, _ = run(20, tmp_path / "a", False)
    halfway, _ = run(10, tmp_path / "b", False)
    resumed, step = run(20, tmp_path / "b", True)
    assert step == 20
    # weights, AdamW moments and the LR schedule all come back: the result is the uninterrupted run's
    assert torch.allclose(straight, resumed, atol=1e-6)
    assert not torch.allclose(halfway, resumed, atol=1e-3)


def test_schedules():
    cfg = TrainConfig(out_dir=".", steps=100, warmup_steps=10, schedule="linear")
    f = lr_lambda(cfg)
    assert f(0) == 0.1 and f(9) == 1.0 and abs(f(55) - 0.5) < 1e-9 and f(100) == 0.0
