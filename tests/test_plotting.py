"""tutorial_utils.plotting: every figure helper draws, and the reverse animation holds every frame."""
import matplotlib
import pytest
import torch

matplotlib.use("Agg")

from tutorial_utils import plotting  # noqa: E402


def test_every_figure_helper_draws(tmp_path):
    import matplotlib.pyplot as plt
    from solutions import forward_diffuse_1d, q_sample

    x = torch.rand(10, 1, 28, 28) * 2 - 1
    labels = torch.arange(10)
    figs = [
        plotting.show_images(x, nrow=5).figure,
        plotting.plot_forward_1d(forward_diffuse_1d(torch.randn(500), 0.05, 20)),
        plotting.plot_noising_grid(x[:2], [25, 999], q_sample),
        plotting.plot_pixel_histogram(torch.randn(1000)),
        plotting.plot_class_grid(x, labels),
        plotting.plot_real_vs_generated(x, x),
        plotting.plot_reverse_strip([(t, x) for t in (10, 5, 0)]),
        plotting.plot_losses([1.0] * 100),
    ]
    for i, fig in enumerate(figs):
        assert fig.axes, f"figure {i} has no axes"
        fig.savefig(tmp_path / f"{i}.png")
    assert len(figs[1].axes[0].lines) >= 1  # the N(0, 1) overlay
    assert len(figs[2].axes) == 3            # x_0 + two timesteps
    assert len(figs[4].axes) == 10           # one row per class
    strip = plotting.plot_reverse_strip([(t, x, -x) for t in (10, 5, 0)], show_x0=True)
    assert len(strip.axes) == 6                # x_t above, x̂_0 below, for each of the 3 frames
    with pytest.raises(ValueError, match="x0_hat"):
        plotting.plot_reverse_strip([(t, x) for t in (10, 5, 0)], show_x0=True)
    plt.close("all")


def test_the_reverse_animation_holds_every_frame():
    """to_jshtml embeds one PNG per frame: as many as frames given, and they differ (the frames really change)."""
    import re

    x = torch.rand(4, 1, 28, 28) * 2 - 1
    frames = [(t, x * t / 10) for t in (10, 7, 4, 0)]
    html = plotting.animate_reverse(frames, nrow=2).to_jshtml()
    pngs = re.findall(r'frames\[(\d+)\] = "data:image/png;base64,([^"]+)"', html)
    assert [int(k) for k, _ in pngs] == list(range(len(frames)))
    assert re.search(r"new Array\((\d+)\)", html).group(1) == str(len(frames))
    assert len({png for _, png in pngs}) == len(frames), "the animation repeats a frame: update() did not draw"
    html3 = plotting.animate_reverse([(t, x, -x) for t in (10, 0)], nrow=2).to_jshtml()   # frames with x̂_0
    assert len(re.findall(r'frames\[\d+\] = "data:image/png', html3)) == 2
