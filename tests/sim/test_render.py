import multiprocessing

import numpy as np

from navintent.sim import generate_scene
from navintent.sim.render import SceneRenderer


def _child(renderer, pose, queue):
    queue.put(renderer.render(pose, None))
    renderer.close()


def test_fork_after_rendering_does_not_hang():
    scene = generate_scene(2)
    renderer = SceneRenderer(scene)
    try:
        parent = renderer.render(scene.start, None)
        ctx = multiprocessing.get_context("fork")
        queue = ctx.Queue()
        proc = ctx.Process(target=_child, args=(renderer, scene.start, queue))
        proc.start()
        image = queue.get(timeout=60)
        proc.join(timeout=30)
        assert proc.exitcode == 0
        np.testing.assert_array_equal(image, parent)  # the child made its own renderer, same picture
        np.testing.assert_array_equal(renderer.render(scene.start, None), parent)  # parent still works
    finally:
        if "proc" in locals() and proc.is_alive():
            proc.kill()
        renderer.close()
