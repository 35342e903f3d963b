"""Drive a robot with navintent's deployment loop: a camera callback in, a velocity command out.

Not part of the package and not imported by it: a sketch of the wiring for a ROS 2 robot (``rclpy``), the way
visualnav-transformer's ``navigate.py`` runs NoMaD. Everything that is not ROS is navintent's library:

- :class:`navintent.deploy.TopomapNavigator` (or :class:`~navintent.deploy.Explorer` for goal-masked exploration)
  keeps the observation context, localises on the topological map, samples towards the subgoal and returns the
  waypoint in metres;
- :func:`navintent.control.pd_follower` is NoMaD's waypoint -> (v, w) controller.

The three lines to change for your robot are marked ``# CHANGE``: the camera topic, the velocity topic, and the
paths of your checkpoint and topological map (record one by driving the route once with
:class:`navintent.deploy.TopomapRecorder`, or use NoMaD's ``topomaps/images/<name>/`` folder as it is).

Run (after ``source /opt/ros/<distro>/setup.bash``)::

    python examples/deploy_ros2.py --ckpt runs/two_stage/latest.pt --topomap topomaps/images/corridor
"""

from __future__ import annotations

import argparse

import numpy as np


def main() -> None:
    import rclpy  # ROS 2 stays out of navintent: only this example needs it
    from geometry_msgs.msg import Twist
    from rclpy.node import Node
    from sensor_msgs.msg import Image

    from navintent.checkpoint import load_inference_model
    from navintent.control import pd_follower
    from navintent.deploy import Topomap, TopomapNavigator
    from navintent.metric_scale import RobotConfig, resolve_metric_scale

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--ckpt", required=True
    )  # CHANGE: your checkpoint (navintent's, or nomad.pth + --config)
    parser.add_argument("--config", default=None)
    parser.add_argument("--topomap", required=True)  # CHANGE: your map folder (0.png, 1.png, ...)
    parser.add_argument("--robot", default=None, help="NoMaD robot.yaml (max_v, max_w, frame_rate)")
    parser.add_argument("--latent", default="prior", choices=("none", "prior"))
    args = parser.parse_args()

    robot = RobotConfig.from_yaml(args.robot) if args.robot else RobotConfig()
    loaded = load_inference_model(args.ckpt, config=args.config)
    scale = resolve_metric_scale(checkpoint=loaded.training_scales, robot=robot)
    latent = args.latent if loaded.is_intent else "none"
    navigator = TopomapNavigator(
        loaded.model, Topomap.from_folder(args.topomap), metric_scale=scale.metres_per_unit, latent=latent
    )
    print(scale.describe())

    class NavigatorNode(Node):
        def __init__(self) -> None:
            super().__init__("navintent_navigator")
            self.frame: np.ndarray | None = None
            self.create_subscription(Image, "/camera/image_raw", self.on_image, 1)  # CHANGE: camera topic
            self.cmd = self.create_publisher(Twist, "/cmd_vel", 1)  # CHANGE: velocity topic
            self.create_timer(1.0 / robot.frame_rate, self.tick)

        def on_image(self, msg: Image) -> None:
            rgb = np.frombuffer(msg.data, dtype=np.uint8).reshape(msg.height, msg.width, -1)[..., :3]
            self.frame = np.ascontiguousarray(rgb if msg.encoding.startswith("rgb") else rgb[..., ::-1])

        def tick(self) -> None:
            if self.frame is None:
                return
            step = navigator.step(self.frame)
            twist = Twist()
            if step.ready and not step.reached_goal:
                v, w = pd_follower(
                    step.waypoint, max_v=robot.max_v, max_w=robot.max_w, dt=1.0 / robot.frame_rate
                )
                twist.linear.x, twist.angular.z = v, w
            self.cmd.publish(twist)
            if step.reached_goal:
                self.get_logger().info(f"reached the goal node {step.closest_node}")

    rclpy.init()
    rclpy.spin(NavigatorNode())


if __name__ == "__main__":
    main()
