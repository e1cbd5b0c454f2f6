"""A small vectorised ray tracer for the 3D Shapes scene.

The scene (read off the official animation, see ``shared/DATA.md`` and
``shared/reference/shapes3d_official_*.png``): an object standing on the floor
in the middle of a square room whose walls stop below a light-blue sky; the
camera orbits the object at the given azimuth, level, a little above the top
of a small object; a key light behind the camera lights what it sees; a
light high above, left of and behind the object lights it from the upper left
and casts a soft shadow to its lower right.

Because hues only tint (every surface is a fully saturated hue scaled by its
shading), a rendered image is linear in three colours::

    image = floor_map * rgb(floor_hue) + wall_map * rgb(wall_hue)
            + object_map * rgb(object_hue) + constant_map

where the maps ``(G, H, W)`` (and ``constant_map`` ``(G, 3, H, W)``: sky and
specular highlight) depend only on the geometry (scale, shape, orientation).
``shading_maps`` traces them once per geometry, with ``supersample^2`` rays
per pixel for anti-aliasing and a soft shadow; ``compose`` tints them.

Units: the room is 2 x 2 (walls at x, z = +-1), y is up, the object stands on
the floor at the origin. Vectors are stored component-first, ``(3, G, S, N)``
for G geometries, S sub-pixel samples and N pixels, so every operation runs
on contiguous planes; there is no per-pixel or per-image Python loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = [
    "OBJECT_SHAPES",
    "SCENE",
    "Scene",
    "ShadingMaps",
    "compose",
    "hue_to_rgb",
    "shading_maps",
    "trace",
]

INF = float("inf")
EPS = 1e-4
Tensor = torch.Tensor


@dataclass(frozen=True)
class Scene:
    """Camera, room, object sizes and lights. Lengths in room units (walls at +-1), angles in radians."""

    image_size: int = 64
    supersample: int = 3  # rays per pixel along each axis (anti-aliasing, soft shadow)
    wall_height: float = 0.574
    camera_distance: float = 0.661  # horizontal distance from the object's axis
    camera_height: float = 0.201
    camera_pitch: float = 0.0  # positive looks down; the official camera is level
    tan_half_fov: float = 0.479
    # object sizes at scale 1 (multiplied by the scale factor 0.75-1.25)
    cube_side: float = 0.183
    cylinder_radius: float = 0.092
    cylinder_height: float = 0.198
    sphere_radius: float = 0.113
    capsule_radius: float = 0.084
    capsule_length: float = 0.185  # of the straight part; total height is length + 2 * radius
    # lights, positions relative to the camera as (right, up, back), orbiting with it; fitted (with the
    # strengths below) to the brightness of the official frames
    key_light: tuple[float, float, float] = (0.0, 0.1, 1.33)  # behind the camera: lights what it sees
    top_light: tuple[float, float, float] = (-0.72, 4.11, -1.46)  # high above, left of and behind the object
    top_light_radius: float = 0.35  # area light: soft shadow edges
    ambient: float = 0.304
    key_strength: float = 0.660
    top_strength: float = 0.576
    specular: float = 0.10
    shininess: float = 24.0
    seam_darkening: float = 0.33  # where the walls meet the floor (ambient occlusion)
    seam_width: float = 0.012
    sky_rgb: tuple[float, float, float] = (153 / 255, 226 / 255, 249 / 255)


SCENE = Scene()


@dataclass
class ShadingMaps:
    """Hue-independent maps of G geometries.

    ``floor``, ``wall``, ``object``: ``(G, H, W)`` shading of each surface
    (0 where the surface is not seen); ``constant``: ``(G, 3, H, W)`` sky and highlight.
    """

    floor: Tensor
    wall: Tensor
    object: Tensor
    constant: Tensor


def hue_to_rgb(hues: Tensor) -> Tensor:
    """Fully saturated, full-value HSV colours ``(..., 3)`` in [0, 1] for hues in [0, 1)."""
    k = (torch.tensor([5.0, 3.0, 1.0], dtype=hues.dtype) + hues[..., None] * 6.0) % 6.0
    return 1.0 - torch.clamp(torch.minimum(k, 4.0 - k), 0.0, 1.0)


# -- ray-primitive intersections ----------------------------------------------------------
# o: ray origins (3, ...), d: unit directions (3, ...), sizes broadcastable to (...);
# each returns the distance t (...) to the first hit beyond EPS, inf on a miss.


def _dot(a: Tensor, b: Tensor) -> Tensor:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _inf_like(x: Tensor) -> Tensor:
    return torch.full_like(x, INF)


def _first_root(b: Tensor, c: Tensor) -> Tensor:
    """Smallest t > EPS solving t^2 + 2 b t + c = 0, inf if none."""
    disc = b * b - c
    root = torch.sqrt(torch.clamp(disc, min=0.0))
    near, far = -b - root, -b + root
    t = torch.where(near > EPS, near, torch.where(far > EPS, far, _inf_like(near)))
    return torch.where(disc >= 0, t, _inf_like(t))


def _sphere(o: Tensor, d: Tensor, centre_y: Tensor, radius: Tensor) -> Tensor:
    oy = o[1] - centre_y
    b = o[0] * d[0] + oy * d[1] + o[2] * d[2]
    c = o[0] * o[0] + oy * oy + o[2] * o[2] - radius * radius
    return _first_root(b, c)


def _vertical_tube(o: Tensor, d: Tensor, radius: Tensor, y0: Tensor | float, y1: Tensor) -> Tensor:
    """Side of the vertical cylinder x^2 + z^2 = r^2 between heights y0 and y1 (open ends)."""
    a = (d[0] * d[0] + d[2] * d[2]).clamp_min(1e-12)  # vertical rays never hit the side
    b = (o[0] * d[0] + o[2] * d[2]) / a
    c = (o[0] * o[0] + o[2] * o[2] - radius * radius) / a
    disc = b * b - c
    root = torch.sqrt(torch.clamp(disc, min=0.0))
    best = _inf_like(b)
    for t in (-b + root, -b - root):  # far first, so the near root wins where both are valid
        y = o[1] + t * d[1]
        best = torch.where((disc >= 0) & (t > EPS) & (y >= y0) & (y <= y1), t, best)
    return best


def _disc(o: Tensor, d: Tensor, y: Tensor | float, radius: Tensor) -> Tensor:
    """Horizontal disc of ``radius`` at height ``y``, centred on the vertical axis."""
    t = (y - o[1]) / torch.where(d[1].abs() > 1e-12, d[1], torch.full_like(d[1], 1e-12))
    x, z = o[0] + t * d[0], o[2] + t * d[2]
    return torch.where((t > EPS) & (x * x + z * z <= radius * radius), t, _inf_like(t))


def _box(o: Tensor, d: Tensor, half: Tensor) -> Tensor:
    """Axis-aligned cube of half side ``half`` standing on the floor (y from 0 to 2 * half)."""
    t_near, t_far = None, None
    for axis, (lo, hi) in enumerate(((-half, half), (0.0 * half, 2 * half), (-half, half))):
        inv = 1.0 / torch.where(d[axis].abs() > 1e-12, d[axis], torch.full_like(d[axis], 1e-12))
        t1, t2 = (lo - o[axis]) * inv, (hi - o[axis]) * inv
        near, far = torch.minimum(t1, t2), torch.maximum(t1, t2)
        t_near = near if t_near is None else torch.maximum(t_near, near)
        t_far = far if t_far is None else torch.minimum(t_far, far)
    t = torch.where(t_near > EPS, t_near, t_far)
    return torch.where((t_far >= t_near) & (t > EPS), t, _inf_like(t))


def _up_like(p: Tensor) -> Tensor:
    n = torch.zeros_like(p)
    n[1] = 1.0
    return n


def _normalised(v: Tensor) -> Tensor:
    return v / torch.sqrt(_dot(v, v)).clamp_min(1e-9)


# -- the four objects ------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectShape:
    """How to intersect one object shape and find its surface normal, at a scale ``(G, 1, 1)``."""

    hit: Callable[[Scene, Tensor, Tensor, Tensor], Tensor]
    normal: Callable[[Scene, Tensor, Tensor], Tensor]


def _cube_hit(scene: Scene, o: Tensor, d: Tensor, scale: Tensor) -> Tensor:
    return _box(o, d, 0.5 * scene.cube_side * scale)


def _cube_normal(scene: Scene, p: Tensor, scale: Tensor) -> Tensor:
    half = 0.5 * scene.cube_side * scale
    q = torch.stack([p[0], p[1] - half, p[2]]) / half  # in [-1, 1] inside the cube
    largest = q.abs().amax(dim=0)
    return torch.where(q.abs() >= largest, torch.sign(q), torch.zeros_like(q))


def _cylinder_hit(scene: Scene, o: Tensor, d: Tensor, scale: Tensor) -> Tensor:
    r, h = scene.cylinder_radius * scale, scene.cylinder_height * scale
    t = torch.minimum(_vertical_tube(o, d, r, 0.0, h), _disc(o, d, h, r))
    return torch.minimum(t, _disc(o, d, 0.0, r))  # the bottom, for shadow rays from under the rim


def _cylinder_normal(scene: Scene, p: Tensor, scale: Tensor) -> Tensor:
    h = scene.cylinder_height * scale
    radial = torch.stack([p[0], torch.zeros_like(p[0]), p[2]])
    return torch.where(p[1] > h - 1e-4, _up_like(p), _normalised(radial))


def _sphere_hit(scene: Scene, o: Tensor, d: Tensor, scale: Tensor) -> Tensor:
    r = scene.sphere_radius * scale
    return _sphere(o, d, r, r)


def _sphere_normal(scene: Scene, p: Tensor, scale: Tensor) -> Tensor:
    r = scene.sphere_radius * scale
    return torch.stack([p[0], p[1] - r, p[2]]) / r


def _capsule_hit(scene: Scene, o: Tensor, d: Tensor, scale: Tensor) -> Tensor:
    r, length = scene.capsule_radius * scale, scene.capsule_length * scale
    t = torch.minimum(_sphere(o, d, r, r), _sphere(o, d, r + length, r))
    return torch.minimum(t, _vertical_tube(o, d, r, r, r + length))


def _capsule_normal(scene: Scene, p: Tensor, scale: Tensor) -> Tensor:
    r, length = scene.capsule_radius * scale, scene.capsule_length * scale
    axis_y = torch.minimum(torch.maximum(p[1], r), r + length)  # nearest point of the axis segment
    return _normalised(torch.stack([p[0], p[1] - axis_y, p[2]]))


#: The object shapes in the official order of the shape factor.
OBJECT_SHAPES: dict[str, ObjectShape] = {
    "cube": ObjectShape(_cube_hit, _cube_normal),
    "cylinder": ObjectShape(_cylinder_hit, _cylinder_normal),
    "sphere": ObjectShape(_sphere_hit, _sphere_normal),
    "capsule": ObjectShape(_capsule_hit, _capsule_normal),
}


# -- camera and room -----------------------------------------------------------------------


def _camera(scene: Scene, azimuth: Tensor) -> tuple[Tensor, ...]:
    """Camera position, forward, right, up and level (horizontal forward), each ``(3, G)``.

    ``azimuth`` ``(G,)`` in radians turns the camera about the object's vertical axis.
    """
    sin, cos = torch.sin(azimuth), torch.cos(azimuth)
    zeros, ones = torch.zeros_like(sin), torch.ones_like(sin)
    position = torch.stack(
        [-scene.camera_distance * sin, scene.camera_height * ones, scene.camera_distance * cos]
    )
    level = torch.stack([sin, zeros, -cos])  # towards the object's axis
    right = torch.stack([cos, zeros, sin])
    world_up = torch.stack([zeros, ones, zeros])
    pitch = torch.tensor(scene.camera_pitch, dtype=sin.dtype)
    forward = torch.cos(pitch) * level - torch.sin(pitch) * world_up
    up = torch.linalg.cross(right, forward, dim=0)
    return position, forward, right, up, level


def _image_plane(scene: Scene, dtype) -> tuple[Tensor, Tensor]:
    """Image-plane coordinates (u right, v up) of every ray, each ``(S, N)``: sub-sample, pixel."""
    n, k = scene.image_size, scene.supersample
    offsets = (torch.arange(k, dtype=dtype) + 0.5) / k  # within a pixel
    coord = (
        (torch.arange(n, dtype=dtype)[None, :] + offsets[:, None]) / n * 2 - 1
    ) * scene.tan_half_fov  # (k, n)
    # (sub-row, sub-col, row, col) -> (S, N)
    u = coord[None, :, None, :].expand(k, k, n, n).reshape(k * k, n * n)
    v = -coord[:, None, :, None].expand(k, k, n, n).reshape(k * k, n * n)
    return u, v


def _light_jitter(scene: Scene, dtype) -> Tensor:
    """Offsets ``(3, 1, S, 1)`` on a horizontal disc, one per sub-pixel sample, for a soft shadow.

    Each sample of a pixel sees a different point of the area light (a
    Fibonacci spiral), so averaging the pixel blurs the shadow's edge.
    """
    s = scene.supersample**2
    i = torch.arange(s, dtype=dtype)
    radius = scene.top_light_radius * torch.sqrt((i + 0.5) / s)
    angle = i * 2.399963  # the golden angle
    return torch.stack([radius * torch.cos(angle), torch.zeros_like(i), radius * torch.sin(angle)])[
        :, None, :, None
    ]


def _room(scene: Scene, o: Tensor, d: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Nearest room surface hit by rays from inside the room.

    Returns t (inf for the sky), kind (0 sky, 1 floor, 2 wall) and the normal ``(3, ...)``.
    """
    sign_x, sign_z = torch.sign(d[0]), torch.sign(d[2])
    t_x = (sign_x - o[0]) / torch.where(d[0].abs() > 1e-12, d[0], torch.full_like(d[0], 1e-12))
    t_z = (sign_z - o[2]) / torch.where(d[2].abs() > 1e-12, d[2], torch.full_like(d[2], 1e-12))
    t_wall = torch.minimum(t_x, t_z)
    t_floor = torch.where(
        d[1] < 0, -o[1] / torch.where(d[1] < 0, d[1], -torch.ones_like(d[1])), _inf_like(t_wall)
    )
    floor = t_floor < t_wall
    wall = ~floor & (o[1] + t_wall * d[1] <= scene.wall_height)
    t = torch.where(floor, t_floor, torch.where(wall, t_wall, _inf_like(t_wall)))
    kind = torch.where(floor, 1, torch.where(wall, 2, 0))
    facing_x = t_x < t_z  # which wall the ray reaches first; its normal points back into the room
    zeros = torch.zeros_like(t)
    normal = torch.stack(
        [
            torch.where(facing_x & ~floor, -sign_x, zeros),
            floor.to(t.dtype),
            torch.where(~facing_x & ~floor, -sign_z, zeros),
        ]
    )
    return t, kind, normal


def _lambert(normal: Tensor, point: Tensor, light: Tensor) -> Tensor:
    to_light = light - point
    return torch.clamp(_dot(normal, to_light) / torch.sqrt(_dot(to_light, to_light)).clamp_min(1e-9), min=0.0)


@dataclass
class RaySamples:
    """What each ray sees; tensors ``(G, S, N)`` (vectors ``(3, G, S, N)``)."""

    kind: Tensor  # 0 sky, 1 floor, 2 wall, 3 object
    direction: Tensor  # unit ray directions
    point: Tensor  # hit points (undefined for the sky)
    normal: Tensor
    key_light: Tensor  # (3, G, 1, 1)
    top_light: Tensor  # (3, G, S, 1): one point of the area light per sub-sample
    lit: Tensor  # bool: the top light reaches the point (no shadow)


def trace(scales: Tensor, shape: str, azimuths: Tensor, scene: Scene = SCENE) -> RaySamples:
    """Cast every camera ray of G geometries of one object shape, and the shadow rays.

    Args:
        scales: ``(G,)`` object scale factors (official values, 0.75-1.25).
        shape: a key of ``OBJECT_SHAPES``.
        azimuths: ``(G,)`` camera orbit angles in radians.
        scene: the room, camera and lights (default: the official scene, ``SCENE``).
    """
    dtype = torch.float32
    obj = OBJECT_SHAPES[shape]
    scale = scales.to(dtype)[:, None, None]  # (G, 1, 1)
    position, forward, right, up, level = (v[:, :, None, None] for v in _camera(scene, azimuths.to(dtype)))
    u, v = _image_plane(scene, dtype)  # (S, N)
    d = _normalised(forward + u * right + v * up)  # (3, G, S, N)
    o = position  # (3, G, 1, 1) broadcasts against the rays

    t_obj = obj.hit(scene, o, d, scale)
    t_room, kind, normal_room = _room(scene, o, d)
    on_object = t_obj < t_room
    kind = torch.where(on_object, 3, kind)
    t_hit = torch.where(on_object, t_obj, t_room)
    point = o + torch.where(torch.isfinite(t_hit), t_hit, torch.zeros_like(t_hit)) * d
    normal = torch.where(on_object, obj.normal(scene, point, scale), normal_room)

    # lights orbit with the camera: offsets (right, up, back) from it -> world positions
    world_up = torch.tensor([0.0, 1.0, 0.0], dtype=dtype)[:, None, None, None]

    def light_position(offset: tuple[float, float, float]) -> Tensor:
        return position + offset[0] * right + offset[1] * world_up - offset[2] * level

    key = light_position(scene.key_light)  # (3, G, 1, 1)
    top = light_position(scene.top_light) + _light_jitter(scene, dtype)  # (3, G, S, 1)

    # the object's shadow from the top light on floor and walls (a convex object cannot shadow itself)
    to_top = top - point
    distance = torch.sqrt(_dot(to_top, to_top))
    lit = (obj.hit(scene, point, to_top / distance, scale) >= distance) | on_object
    return RaySamples(kind, d, point, normal, key, top, lit)


def shading_maps(scales: Tensor, shape: str, azimuths: Tensor, scene: Scene = SCENE) -> ShadingMaps:
    """The hue-independent maps of G geometries of one shape (arguments as for ``trace``).

    Each pixel is the mean of its ``supersample^2`` rays.
    """
    rays = trace(scales, shape, azimuths, scene)
    kind, point, normal = rays.kind, rays.point, rays.normal
    value = (
        scene.ambient
        + scene.key_strength * _lambert(normal, point, rays.key_light)
        + scene.top_strength * _lambert(normal, point, rays.top_light) * rays.lit
    )
    # where the walls meet the floor the seam is darker (ambient occlusion): distance to the seam
    seam = torch.where(kind == 1, 1.0 - torch.maximum(point[0].abs(), point[2].abs()), point[1])
    value = value * (1.0 - scene.seam_darkening * torch.exp(-seam.clamp_min(0) / scene.seam_width))
    value = torch.clamp(value, 0.0, 1.0)

    # white highlight of the key light on the object (independent of the object's hue)
    half_vector = _normalised(_normalised(rays.key_light - point) - rays.direction)
    highlight = scene.specular * torch.clamp(_dot(normal, half_vector), min=0.0) ** scene.shininess

    g, n = kind.shape[0], scene.image_size

    def pixel_mean(x: Tensor) -> Tensor:  # (G, S, N) samples -> (G, n, n) pixels
        return x.mean(dim=1).reshape(g, n, n)

    sky_rgb = torch.tensor(scene.sky_rgb, dtype=value.dtype)
    return ShadingMaps(
        floor=pixel_mean(value * (kind == 1)),
        wall=pixel_mean(value * (kind == 2)),
        object=pixel_mean(value * (kind == 3)),
        constant=pixel_mean((kind == 0).to(value.dtype))[:, None] * sky_rgb[None, :, None, None]
        + pixel_mean(highlight * (kind == 3))[:, None],
    )


def compose(maps: ShadingMaps, floor_rgb: Tensor, wall_rgb: Tensor, object_rgb: Tensor) -> Tensor:
    """uint8 images ``(G, 3, H, W)``: geometry g tinted by colours ``(G, 3)`` (see the module docstring)."""
    image = (
        maps.floor[:, None] * floor_rgb[:, :, None, None]
        + maps.wall[:, None] * wall_rgb[:, :, None, None]
        + maps.object[:, None] * object_rgb[:, :, None, None]
        + maps.constant
    )
    return image.mul_(255.0).add_(0.5).clamp_(0, 255).to(torch.uint8)
