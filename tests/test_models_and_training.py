"""UNet shapes, conditioning, Algorithm 1 on real MNIST, sampling loops and seeding."""
import pytest
import torch

from solutions import (ConvBlock, Unet, UNet_cond, p_sample_loop_cDDPM, p_sample_loop_DDPM, Schedule, train,
                       train_step)
from tutorial_utils import TensorBatches, load_mnist_tensors, seed_everything


@pytest.mark.parametrize("ch", [16, 32])
def test_unet_output_shape_matches_input(ch):
    model = Unet(ch=ch)
    x = torch.randn(5, 1, 28, 28)
    assert model(x, torch.randint(0, 1000, (5,))).shape == (5, 1, 28, 28)


def test_unet_prediction_depends_on_timestep():
    torch.manual_seed(0)
    model = Unet(ch=16)
    x = torch.randn(1, 1, 28, 28).repeat(2, 1, 1, 1)
    out = model(x, torch.tensor([10, 900]))
    assert not torch.allclose(out[0], out[1], atol=1e-4)


def test_convblock_shapes():
    block = ConvBlock(8, 16, emb_dim=32)
    assert block(torch.randn(2, 8, 14, 14), torch.randn(2, 32)).shape == (2, 16, 14, 14)


def test_unet_cond_shape_and_label_dependence():
    torch.manual_seed(0)
    model = UNet_cond(ch=16, n_classes=10)
    x = torch.randn(1, 1, 28, 28).repeat(10, 1, 1, 1)
    t = torch.full((10,), 500)
    out = model(x, t, torch.arange(10))
    assert out.shape == (10, 1, 28, 28)
    # same image, same t, different label -> different prediction for every pair of labels
    diffs = (out[:, None] - out[None, :]).flatten(2).abs().amax(-1)
    assert (diffs + torch.eye(10) > 1e-5).all()
    # and the label's embedding is what makes the difference
    same = model(x[:2], t[:2], torch.tensor([3, 3]))
    torch.testing.assert_close(same[0], same[1])


@pytest.mark.parametrize("cls, extra", [(Unet, {}), (UNet_cond, {"n_classes": 11})])
def test_input_skip_adds_a_learned_multiple_of_the_input(cls, extra):
    """ε̂ = UNet(x_t, t) + s(t)·x_t: off by default (the shipped checkpoints' state dicts are unchanged), zero at the
    start when on (the plain UNet's output), and s comes from the (time or time + class) embedding."""
    assert not any("input_skip" in k for k in cls(ch=16, **extra).state_dict())
    torch.manual_seed(0)
    plain = cls(ch=16, **extra)
    skip = cls(ch=16, input_skip=True, **extra)
    missing, unexpected = skip.load_state_dict(plain.state_dict(), strict=False)
    assert sorted(missing) == ["input_skip.bias", "input_skip.weight"] and not unexpected
    x, t = torch.randn(3, 1, 28, 28), torch.tensor([0, 500, 999])
    args = (x, t) + ((torch.tensor([1, 2, 10]),) if extra else ())
    with torch.no_grad():
        torch.testing.assert_close(skip(*args), plain(*args))              # s = 0 at the start
        skip.input_skip.bias.fill_(0.25)
        skip.input_skip.weight.normal_()
        emb = skip.time_mlp(t) + (skip.class_emb(args[2]) if extra else 0)
        s = skip.input_skip(emb)[:, :, None, None]
        torch.testing.assert_close(skip(*args), plain(*args) + s * x)
        assert s.flatten().unique().numel() == 3                          # one s per image, from its embedding
        skip.out_conv.weight.zero_(); skip.out_conv.bias.zero_()
        skip.input_skip.weight.zero_(); skip.input_skip.bias.fill_(1.0)
        torch.testing.assert_close(skip(*args), x)                         # it can be the identity, mean included


def test_models_reject_wrong_input_shapes_with_a_clear_message():
    model = UNet_cond(ch=16)
    with pytest.raises(ValueError, match="unsqueeze"):
        model(torch.randn(2, 28, 28), torch.tensor([1, 2]), torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="one timestep per image"):
        model(torch.randn(2, 1, 28, 28), torch.tensor([1]), torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="one class label per image"):
        model(torch.randn(2, 1, 28, 28), torch.tensor([1, 2]), torch.tensor([1]))


@pytest.fixture(scope="module")
def sixes():
    x, y = load_mnist_tensors(train=True, digits=[6], limit=2048)
    return x, y


def test_a_few_hundred_steps_on_real_mnist_lower_the_loss(sixes):
    x, y = sixes
    model = Unet(ch=16)
    torch.manual_seed(0)
    losses = train(model, torch.optim.Adam(model.parameters(), lr=2e-3), TensorBatches(x, y, batch_size=16, seed=0),
                   epochs=2, max_steps=200, progress=False)
    assert len(losses) == 200
    first, last = sum(losses[:30]) / 30, sum(losses[-30:]) / 30
    assert last < 0.6 * first, f"loss went from {first:.3f} to {last:.3f}"
    assert last < 0.25


def test_training_is_reproducible_with_the_same_seed(sixes):
    x, y = sixes

    def run(seed):
        torch.manual_seed(999)                     # model init is seeded separately from training
        model = Unet(ch=8)
        torch.manual_seed(seed)
        return train(model, torch.optim.Adam(model.parameters(), lr=1e-3), TensorBatches(x, y, batch_size=16, seed=seed),
                     epochs=1, max_steps=5, progress=False), model

    (l1, m1), (l2, m2), (l3, _) = run(0), run(0), run(1)
    assert l1 == l2
    assert l1 != l3
    for p, q in zip(m1.parameters(), m2.parameters()):
        torch.testing.assert_close(p, q)


def test_conditional_training_uses_labels(sixes):
    x, _ = sixes
    y = torch.randint(0, 10, (x.shape[0],))
    model = UNet_cond(ch=8)
    losses = train(model, torch.optim.Adam(model.parameters()), TensorBatches(x, y, batch_size=16), epochs=1,
                   max_steps=3, conditional=True, progress=False)
    assert len(losses) == 3 and all(l > 0 for l in losses)


class _LabelSpy(torch.nn.Module):
    """Records the labels and timesteps it is called with; predicts zeros (loss = E‖ε‖²/d ≈ 1)."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.ys, self.ts = [], []

    def forward(self, x, t, y=None):
        self.ts.append(t.clone())
        if y is not None:
            self.ys.append(y.clone())
        return torch.zeros_like(x) + self.w


def test_label_dropout_replaces_the_asked_share_of_labels_by_the_null_class():
    x = torch.zeros(400, 1, 28, 28)
    y = torch.arange(400) % 10
    spy = _LabelSpy()
    torch.manual_seed(0)
    train(spy, torch.optim.SGD(spy.parameters(), lr=0.0), TensorBatches(x, y, batch_size=100, seed=0), epochs=10,
          conditional=True, p_uncond=0.25, null_class=10, progress=False)
    seen = torch.cat(spy.ys)
    share = (seen == 10).float().mean().item()
    assert seen.numel() == 4000 and abs(share - 0.25) < 0.03, share       # binomial sd ≈ 0.007
    assert set(seen[seen != 10].tolist()) == set(range(10))               # the rest keep their own labels
    t = torch.cat(spy.ts)
    assert t.min() == 0 and t.max() == 999 and t.dtype == torch.long      # t ~ Uniform{0..T-1}
    with pytest.raises(ValueError, match="null_class"):
        train(spy, torch.optim.SGD(spy.parameters(), lr=0.0), [(x[:2], y[:2])], 1, conditional=True, p_uncond=0.1,
              progress=False)


# ------------------------------------------------------------------ the recipe (tutorial_utils.recipe)
def test_recipe_learning_rate_is_linear_warmup_then_cosine():
    """The scheduler's lr in step s against the closed form: peak (s+1)/W for s < W, then
    lr_min + (peak - lr_min) (1 + cos(π (s - W) / (S - W))) / 2."""
    import math

    from tutorial_utils.recipe import Recipe

    peak, W, S, ratio = 3e-3, 10, 60, 0.05
    r = Recipe(steps=S, lr=peak, warmup=W, min_lr_ratio=ratio)
    model = torch.nn.Linear(2, 2)
    opt = r.optimizer(model)
    sched = r.scheduler(opt)
    assert isinstance(opt, torch.optim.AdamW)
    seen = []
    for _ in range(S):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    lo = peak * ratio
    expect = [peak * (s + 1) / W if s < W else lo + (peak - lo) * (1 + math.cos(math.pi * (s - W) / (S - W))) / 2
              for s in range(S)]
    assert seen == pytest.approx(expect, rel=1e-6)
    assert max(seen) == pytest.approx(peak)


def test_recipe_ema_follows_the_formula_with_its_warmup_cap():
    """After each update θ_EMA ← d_s θ_EMA + (1 - d_s) θ with d_s = min(d, (1 + s)/(10 + s)); the first update
    copies θ (AveragedModel's convention)."""
    from tutorial_utils.recipe import Recipe, ema_weights

    d = 0.9
    model = torch.nn.Linear(3, 1, bias=False)
    ema = Recipe(steps=100, warmup=0, ema=d).ema_model(model)
    expect = None
    for s in range(30):
        with torch.no_grad():
            model.weight.copy_(torch.full((1, 3), float(s)))
        ema.update_parameters(model)
        if expect is None:
            expect = torch.full((1, 3), float(s))
        else:
            ds = min(d, (1 + s) / (10 + s))
            expect = ds * expect + (1 - ds) * model.weight.detach()
    torch.testing.assert_close(ema_weights(model, ema).weight, expect)
    assert not ema.module.weight.requires_grad
    assert Recipe(steps=5, warmup=0, ema=0).ema_model(model) is None


@pytest.mark.parametrize("kwargs, words", [
    ({"steps": 0}, "steps must be a whole number"),
    ({"steps": 100, "warmup": 100}, "warmup must be"),
    ({"steps": 100, "ema": 1.0}, "ema must be a decay"),
    ({"steps": 100, "amp": "fp16"}, "amp must be"),
    ({"steps": 100, "p_uncond": 0.1}, "needs null_class"),
])
def test_a_bad_recipe_says_what_is_wrong(kwargs, words):
    from tutorial_utils.recipe import Recipe

    with pytest.raises(ValueError, match=words):
        Recipe(**{"warmup": 0, **kwargs})


def test_train_with_the_recipe_parts_steps_the_schedule_and_the_ema():
    from tutorial_utils.recipe import Recipe

    x = torch.randn(64, 1, 28, 28).clamp(-1, 1)
    r = Recipe(steps=8, batch_size=16, lr=1e-3, warmup=2, ema=0.5, amp="none")
    torch.manual_seed(0)
    model = Unet(ch=8)
    opt, sched, ema = r.optimizer(model), None, r.ema_model(model)
    sched = r.scheduler(opt)
    losses = train(model, opt, TensorBatches(x, torch.zeros(64, dtype=torch.long), batch_size=16), epochs=5,
                   max_steps=r.steps, scheduler=sched, ema=ema, autocast=r.autocast("cpu"), grad_clip=r.grad_clip,
                   progress=False)
    assert len(losses) == 8 and int(ema.n_averaged) == 8
    assert sched.last_epoch == 8 and opt.param_groups[0]["lr"] == pytest.approx(r.lr * r.min_lr_ratio)
    diffs = [(p - q).abs().max().item() for p, q in zip(model.parameters(), ema.module.parameters())]
    assert max(diffs) > 0                                             # the EMA lags the weights


def test_train_step_returns_finite_loss():
    model = Unet(ch=8)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    loss = train_step(model, opt, torch.zeros(4, 1, 28, 28))
    assert 0 < loss < 10


def test_sampling_loops_shapes_frames_and_seeding():
    s = Schedule.linear(20)
    model = Unet(ch=8)
    a, frames = p_sample_loop_DDPM(model, (3, 1, 28, 28), schedule=s, keep_every=5, progress=False, seed=7)
    b = p_sample_loop_DDPM(model, (3, 1, 28, 28), schedule=s, progress=False, seed=7)
    assert a.shape == (3, 1, 28, 28)
    torch.testing.assert_close(a, b)
    assert [t for t, _ in frames] == [20, 15, 10, 5, 0]
    cmodel = UNet_cond(ch=8)
    c = p_sample_loop_cDDPM(cmodel, (4, 1, 28, 28), torch.tensor([0, 1, 2, 3]), schedule=s, progress=False)
    assert c.shape == (4, 1, 28, 28) and torch.isfinite(c).all()
    with pytest.raises(ValueError, match="one label per image"):
        p_sample_loop_cDDPM(cmodel, (4, 1, 28, 28), torch.tensor([0, 1]), schedule=s, progress=False)


def test_seed_everything_makes_torch_repeatable():
    seed_everything(3)
    a = torch.randn(4)
    seed_everything(3)
    assert torch.equal(a, torch.randn(4))
