"""A small vectorised ray tracer for the 3D Shapes scene.

The scene (read off the official animation, see ``shared/DATA.md`` and
``shared/reference/shapes3d_official_*.png``): an object standing on the floor
in the middle of a square room whose walls stop below a light-blue sky; the
camera orbits the object at the given azimuth, close to it and a little above
its top; a key light near the camera, up and to the left, lights every
surface; a light high above the object casts a soft shadow to its lower right.

Because hues only tint (every surface is a fully saturated hue scaled by its
shading), a rendered image is linear in three colours::

    image = floor_map * rgb(floor_hue) + wall_map * rgb(wall_hue)
            + object_map * rgb(object_hue) + constant_map

where the maps ``(G, H, W)`` (and ``constant_map`` ``(G, 3, H, W)``: sky and
specular highlights) depend only on the geometry (scale, shape, orientation).
``shading_maps`` traces them once per geometry, supersampled for
anti-aliasing and a soft shadow; ``compose`` tints them for any hues.

Units: the room is 2 x 2 (walls at x, z = +-1), y is up, the object stands on
the floor at the origin. Everything is torch, batched over geometries and
rays; there is no per-pixel or per-image Python loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = ["SCENE", "OBJECT_SHAPES", "Scene", "ShadingMaps", "compose", "hue_to_rgb", "shading_maps"]

INF = float("inf")
EPS = 1e-4


@dataclass(frozen=True)
class Scene:
    """Camera, room, object sizes and lights. Lengths in room units, angles in radians."""

    image_size: int = 64
    supersample: int = 4  # rays per pixel along each axis (anti-aliasing, soft shadow)
    wall_height: float = 0.574
    camera_distance: float = 0.661  # horizontal distance from the object's axis
    camera_height: float = 0.201
    camera_pitch: float = 0.0  # positive looks down
    tan_half_fov: float = 0.479
    # object sizes at scale 1 (multiplied by the scale factor)
    cube_side: float = 0.183
    cylinder_radius: float = 0.092
    cylinder_height: float = 0.198
    sphere_radius: float = 0.113
    capsule_radius: float = 0.084
    capsule_length: float = 0.185  # of the straight part; total height is length + 2 * radius
    # lights, positions in the camera frame (right, up, back) relative to the camera
    key_light: tuple[float, float, float] = (-0.6, 0.5, 0.3)
    top_light: tuple[float, float, float] = (-0.12, 0.9, -0.42)  # above the object, a little back-left
    top_light_radius: float = 0.06  # area light: soft shadow edges
    ambient: float = 0.33
    key_strength: float = 0.72
    top_strength: float = 0.62
    specular: float = 0.10
    shininess: float = 24.0
    seam_darkening: float = 0.45  # where walls meet the floor (ambient occlusion)
    seam_width: float = 0.012
    sky_rgb: tuple[float, float, float] = (153 / 255, 226 / 255, 249 / 255)


SCENE = Scene()


@dataclass
class ShadingMaps:
    """Hue-independent maps of G geometries.

    ``floor``, ``wall``, ``object``: ``(G, H, W)`` shading of each surface; ``constant``: ``(G, 3, H, W)``.
    """

    floor: torch.Tensor
    wall: torch.Tensor
    object: torch.Tensor
    constant: torch.Tensor


def hue_to_rgb(hues: torch.Tensor) -> torch.Tensor:
    """Fully saturated, full-value HSV colours ``(..., 3)`` in [0, 1] for hues in [0, 1)."""
    k = (torch.tensor([5.0, 3.0, 1.0], dtype=hues.dtype) + hues[..., None] * 6.0) % 6.0
    return 1.0 - torch.clamp(torch.minimum(k, 4.0 - k), 0.0, 1.0)


# -- ray-primitive intersections: origins (..., 3), unit directions (..., 3) -> t (...), inf on a miss -----


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum(-1)


def _first_root(b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Smallest t > EPS solving t^2 + 2 b t + c = 0 (unit direction), inf if none."""
    disc = b * b - c
    root = torch.sqrt(torch.clamp(disc, min=0.0))
    near, far = -b - root, -b + root
    t = torch.where(near > EPS, near, torch.where(far > EPS, far, torch.full_like(near, INF)))
    return torch.where(disc >= 0, t, torch.full_like(t, INF))


def _sphere(o: torch.Tensor, d: torch.Tensor, centre_y: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    oc = o.clone()
    oc[..., 1] = oc[..., 1] - centre_y
    return _first_root(_dot(oc, d), _dot(oc, oc) - radius * radius)


def _vertical_tube(o: torch.Tensor, d: torch.Tensor, radius, y0, y1) -> torch.Tensor:
    """Side of the vertical cylinder x^2 + z^2 = r^2 between heights y0 and y1 (open ends)."""
    a = d[..., 0] ** 2 + d[..., 2] ** 2
    a_safe = torch.where(a > 1e-12, a, torch.ones_like(a))
    b = (o[..., 0] * d[..., 0] + o[..., 2] * d[..., 2]) / a_safe
    c = (o[..., 0] ** 2 + o[..., 2] ** 2 - radius * radius) / a_safe
    disc = b * b - c
    root = torch.sqrt(torch.clamp(disc, min=0.0))
    best = torch.full_like(b, INF)
    for t in (-b + root, -b - root):  # far first, so the near root wins where both are valid
        y = o[..., 1] + t * d[..., 1]
        ok = (disc >= 0) & (a > 1e-12) & (t > EPS) & (y >= y0) & (y <= y1)
        best = torch.where(ok, t, best)
    return best


def _disc(o: torch.Tensor, d: torch.Tensor, y, radius) -> torch.Tensor:
    """Horizontal disc of ``radius`` at height ``y`` centred on the vertical axis."""
    dy = torch.where(d[..., 1].abs() > 1e-12, d[..., 1], torch.full_like(d[..., 1], 1e-12))
    t = (y - o[..., 1]) / dy
    x, z = o[..., 0] + t * d[..., 0], o[..., 2] + t * d[..., 2]
    return torch.where((t > EPS) & (x * x + z * z <= radius * radius), t, torch.full_like(t, INF))


def _box(o: torch.Tensor, d: torch.Tensor, half: torch.Tensor) -> torch.Tensor:
    """Axis-aligned cube of half side ``half`` standing on the floor (y from 0 to 2 half)."""
    lo = torch.stack([-half, torch.zeros_like(half), -half], -1)
    hi = torch.stack([half, 2 * half, half], -1)
    inv = 1.0 / torch.where(d.abs() > 1e-12, d, torch.full_like(d, 1e-12))
    t1, t2 = (lo - o) * inv, (hi - o) * inv
    t_near = torch.minimum(t1, t2).amax(-1)
    t_far = torch.maximum(t1, t2).amin(-1)
    t = torch.where(t_near > EPS, t_near, t_far)
    return torch.where((t_far >= t_near) & (t > EPS), t, torch.full_like(t, INF))


# -- the four objects: (hit, normal) given the scale (...,) -----------------------------------


@dataclass(frozen=True)
class ObjectShape:
    """How to intersect one object shape and find its surface normal, both at a given scale."""

    hit: Callable[[Scene, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
    normal: Callable[[Scene, torch.Tensor, torch.Tensor], torch.Tensor]


def _cube_hit(scene, o, d, scale):
    return _box(o, d, 0.5 * scene.cube_side * scale)


def _cube_normal(scene, p, scale):
    half = 0.5 * scene.cube_side * scale
    q = torch.stack([p[..., 0] / half, (p[..., 1] - half) / half, p[..., 2] / half], -1)
    axis = q.abs().argmax(-1, keepdim=True)
    n = torch.zeros_like(p).scatter_(-1, axis, 1.0)
    return n * torch.sign(q)


def _cylinder_hit(scene, o, d, scale):
    r, h = scene.cylinder_radius * scale, scene.cylinder_height * scale
    t = torch.minimum(_vertical_tube(o, d, r, 0.0, h), _disc(o, d, h, r))
    return torch.minimum(t, _disc(o, d, torch.zeros_like(h), r))


def _cylinder_normal(scene, p, scale):
    h = scene.cylinder_height * scale
    radial = torch.stack([p[..., 0], torch.zeros_like(p[..., 0]), p[..., 2]], -1)
    radial = radial / radial.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    up = torch.zeros_like(p)
    up[..., 1] = 1.0
    on_top = (p[..., 1] > h - 1e-3 * h.clamp_min(1e-6) - 1e-5)[..., None]
    return torch.where(on_top, up, radial)


def _sphere_hit(scene, o, d, scale):
    r = scene.sphere_radius * scale
    return _sphere(o, d, r, r)


def _sphere_normal(scene, p, scale):
    r = scene.sphere_radius * scale
    n = p.clone()
    n[..., 1] = n[..., 1] - r
    return n / r[..., None]


def _capsule_hit(scene, o, d, scale):
    r, length = scene.capsule_radius * scale, scene.capsule_length * scale
    t = torch.minimum(_sphere(o, d, r, r), _sphere(o, d, r + length, r))
    return torch.minimum(t, _vertical_tube(o, d, r, r, r + length))


def _capsule_normal(scene, p, scale):
    r, length = scene.capsule_radius * scale, scene.capsule_length * scale
    axis_y = torch.minimum(torch.maximum(p[..., 1], r), r + length)  # nearest point of the axis segment
    n = p.clone()
    n[..., 1] = n[..., 1] - axis_y
    return n / n.norm(dim=-1, keepdim=True).clamp_min(1e-9)


#: The object shapes in the official order of the shape factor.
OBJECT_SHAPES: dict[str, ObjectShape] = {
    "cube": ObjectShape(_cube_hit, _cube_normal),
    "cylinder": ObjectShape(_cylinder_hit, _cylinder_normal),
    "sphere": ObjectShape(_sphere_hit, _sphere_normal),
    "capsule": ObjectShape(_capsule_hit, _capsule_normal),
}


# -- camera and room --------------------------------------------------------------------


def _camera(scene: Scene, azimuth: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Camera position, forward, right, up and level (horizontal forward), each ``(G, 3)``.

    ``azimuth`` ``(G,)`` in radians turns the camera about the object's vertical axis.
    """
    sin, cos = torch.sin(azimuth), torch.cos(azimuth)
    zeros, ones = torch.zeros_like(sin), torch.ones_like(sin)
    position = torch.stack(
        [-scene.camera_distance * sin, scene.camera_height * ones, scene.camera_distance * cos], -1
    )
    level = torch.stack([sin, zeros, -cos], -1)  # horizontal forward, towards the object's axis
    right = torch.stack([cos, zeros, sin], -1)
    world_up = torch.stack([zeros, ones, zeros], -1)
    pitch = torch.tensor(scene.camera_pitch, dtype=sin.dtype)
    forward = torch.cos(pitch) * level - torch.sin(pitch) * world_up
    up = torch.linalg.cross(right, forward)
    return position, forward, right, up, level


def _pixel_offsets(scene: Scene, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Image-plane coordinates ``(P,)`` of every sub-pixel sample, P = (size * supersample)^2, row-major."""
    n = scene.image_size * scene.supersample
    u = ((torch.arange(n, dtype=dtype) + 0.5) / n * 2 - 1) * scene.tan_half_fov
    v, u = torch.meshgrid(-u, u, indexing="ij")
    return u.reshape(-1), v.reshape(-1)


def _light_jitter(scene: Scene, dtype) -> torch.Tensor:
    """Offsets ``(P, 3)`` on a horizontal disc, one per sub-pixel sample, for a soft shadow.

    Samples within a pixel get different points of the area light (a
    Fibonacci spiral over the ss x ss samples), so averaging a pixel blurs the
    shadow edge.
    """
    k = scene.supersample
    i = torch.arange(k * k, dtype=dtype)
    radius = scene.top_light_radius * torch.sqrt((i + 0.5) / (k * k))
    angle = i * 2.399963
    per_sample = torch.stack([radius * torch.cos(angle), torch.zeros_like(i), radius * torch.sin(angle)], -1)
    n = scene.image_size
    grid = per_sample.reshape(k, k, 3)[None, :, None, :, :].expand(
        n, k, n, k, 3
    )  # rows, sub-rows, cols, sub-cols
    return grid.reshape(-1, 3)


def _room(scene: Scene, o: torch.Tensor, d: torch.Tensor):
    """Nearest room surface hit by rays from inside the room.

    Returns t ``(G, P)`` (inf for the sky), surface kind ``(G, P)`` (0 sky, 1 floor, 2 wall) and normal.
    """
    inv = 1.0 / torch.where(d.abs() > 1e-12, d, torch.full_like(d, 1e-12))
    t_x = (torch.sign(d[..., 0]) - o[..., 0]) * inv[..., 0]  # the wall x = +-1 the ray heads for
    t_z = (torch.sign(d[..., 2]) - o[..., 2]) * inv[..., 2]
    t_wall = torch.minimum(t_x, t_z)
    y_wall = o[..., 1] + t_wall * d[..., 1]
    t_floor = torch.where(d[..., 1] < 0, -o[..., 1] * inv[..., 1], torch.full_like(t_wall, INF))
    floor = t_floor < t_wall
    wall = ~floor & (y_wall <= scene.wall_height)
    t = torch.where(floor, t_floor, torch.where(wall, t_wall, torch.full_like(t_wall, INF)))
    kind = torch.where(floor, 1, torch.where(wall, 2, 0))
    hit_x = (t_x < t_z)[..., None]
    wall_normal = torch.where(
        hit_x,
        torch.stack([-torch.sign(d[..., 0]), torch.zeros_like(t), torch.zeros_like(t)], -1),
        torch.stack([torch.zeros_like(t), torch.zeros_like(t), -torch.sign(d[..., 2])], -1),
    )
    up = torch.zeros_like(d)
    up[..., 1] = 1.0
    normal = torch.where(floor[..., None], up, wall_normal)
    return t, kind, normal


def _lambert(normal: torch.Tensor, point: torch.Tensor, light: torch.Tensor) -> torch.Tensor:
    to_light = light - point
    return torch.clamp(_dot(normal, to_light) / to_light.norm(dim=-1).clamp_min(1e-9), min=0.0)


@dataclass
class RaySamples:
    """What each of the P = (size * supersample)^2 rays of G geometries sees; tensors ``(G, P, ...)``."""

    kind: torch.Tensor  # (G, P) int: 0 sky, 1 floor, 2 wall, 3 object
    direction: torch.Tensor  # (G, P, 3) unit ray directions
    point: torch.Tensor  # (G, P, 3) hit points (the camera position for the sky)
    normal: torch.Tensor  # (G, P, 3)
    key_light: torch.Tensor  # (G, 1, 3)
    top_light: torch.Tensor  # (G, P, 3): one point of the area light per sample
    lit: torch.Tensor  # (G, P) bool: the top light reaches the point (no shadow)


def _object_hits(scene, shapes, o, d, scale, with_normal: bool):
    """Object intersection per geometry's own shape: t ``(G, P)`` and normals ``(G, P, 3)``."""
    t_obj = torch.full(d.shape[:2], INF, dtype=d.dtype)
    normal = torch.zeros_like(d) if with_normal else None
    for index, shape in enumerate(OBJECT_SHAPES.values()):  # four shapes, never a loop over rays
        rows = torch.nonzero(shapes == index).flatten()
        if len(rows) == 0:
            continue
        t = shape.hit(scene, o[rows], d[rows], scale[rows])
        t_obj[rows] = t
        if with_normal:
            point = o[rows] + torch.where(torch.isfinite(t), t, torch.zeros_like(t))[..., None] * d[rows]
            normal[rows] = shape.normal(scene, point, scale[rows])
    return t_obj, normal


def trace(
    scales: torch.Tensor, shapes: torch.Tensor, azimuths: torch.Tensor, scene: Scene = SCENE
) -> RaySamples:
    """Cast every camera ray of G geometries and the shadow ray from where it lands.

    Args:
        scales: ``(G,)`` object scale factors (official values, 0.75-1.25).
        shapes: ``(G,)`` indices into ``OBJECT_SHAPES`` (cube, cylinder, sphere, capsule).
        azimuths: ``(G,)`` camera orbit angles in radians.
    """
    dtype = torch.float32
    scales, azimuths = scales.to(dtype), azimuths.to(dtype)
    position, forward, right, up, level = _camera(scene, azimuths)  # (G, 3) each
    u, v = _pixel_offsets(scene, dtype)  # (P,)
    d = forward[:, None, :] + u[None, :, None] * right[:, None, :] + v[None, :, None] * up[:, None, :]
    d = d / d.norm(dim=-1, keepdim=True)  # (G, P, 3)
    o = position[:, None, :].expand_as(d)
    scale = scales[:, None].expand(d.shape[:2])  # (G, P)

    t_obj, normal_obj = _object_hits(scene, shapes, o, d, scale, with_normal=True)
    t_room, kind, normal_room = _room(scene, o, d)
    on_object = t_obj < t_room
    kind = torch.where(on_object, 3, kind)
    t_hit = torch.where(on_object, t_obj, t_room)
    normal = torch.where(on_object[..., None], normal_obj, normal_room)
    point = o + torch.where(torch.isfinite(t_hit), t_hit, torch.zeros_like(t_hit))[..., None] * d

    # lights orbit with the camera: offsets (right, up, back) from it -> world positions
    world_up = torch.tensor([0.0, 1.0, 0.0], dtype=dtype)

    def light_position(offset: tuple[float, float, float]) -> torch.Tensor:
        return (position + offset[0] * right + offset[1] * world_up - offset[2] * level)[:, None, :]

    key = light_position(scene.key_light)  # (G, 1, 3)
    top = light_position(scene.top_light) + _light_jitter(scene, dtype)[None]  # (G, P, 3)

    # the object's shadow from the top light on floor and walls (a convex object cannot shadow itself)
    to_top = top - point
    distance = to_top.norm(dim=-1)
    t_block, _ = _object_hits(scene, shapes, point, to_top / distance[..., None], scale, with_normal=False)
    lit = (t_block >= distance) | (kind == 3)
    return RaySamples(kind, d, point, normal, key, top, lit)


def shading_maps(
    scales: torch.Tensor, shapes: torch.Tensor, azimuths: torch.Tensor, scene: Scene = SCENE
) -> ShadingMaps:
    """The hue-independent maps ``(G, H, W)`` of G geometries (arguments as for ``trace``).

    Each pixel is the mean of its ``supersample^2`` rays.
    """
    rays = trace(scales, shapes, azimuths, scene)
    kind, point, normal = rays.kind, rays.point, rays.normal
    value = (
        scene.ambient
        + scene.key_strength * _lambert(normal, point, rays.key_light)
        + scene.top_strength * _lambert(normal, point, rays.top_light) * rays.lit
    )
    # where the walls meet the floor, the seam is darker (ambient occlusion)
    seam_distance = torch.where(
        kind == 1, 1.0 - torch.maximum(point[..., 0].abs(), point[..., 2].abs()), point[..., 1]
    )
    value = value * (1.0 - scene.seam_darkening * torch.exp(-seam_distance.clamp_min(0) / scene.seam_width))
    value = torch.clamp(value, 0.0, 1.0)

    # white specular highlight of the key light on the object (does not depend on the object's hue)
    to_key = rays.key_light - point
    half_vector = to_key / to_key.norm(dim=-1, keepdim=True) - rays.direction
    half_vector = half_vector / half_vector.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    highlight = scene.specular * torch.clamp(_dot(normal, half_vector), min=0.0) ** scene.shininess

    g, k, n = kind.shape[0], scene.supersample, scene.image_size

    def pixel_mean(x: torch.Tensor) -> torch.Tensor:  # (G, P) samples -> (G, n, n) pixels
        return x.reshape(g, n, k, n, k).mean(dim=(2, 4))

    sky_rgb = torch.tensor(scene.sky_rgb, dtype=value.dtype)
    return ShadingMaps(
        floor=pixel_mean(value * (kind == 1)),
        wall=pixel_mean(value * (kind == 2)),
        object=pixel_mean(value * (kind == 3)),
        constant=pixel_mean((kind == 0).to(value.dtype))[:, None] * sky_rgb[None, :, None, None]
        + pixel_mean(highlight * (kind == 3))[:, None],
    )


def compose(
    maps: ShadingMaps, floor_rgb: torch.Tensor, wall_rgb: torch.Tensor, object_rgb: torch.Tensor
) -> torch.Tensor:
    """uint8 images ``(G, 3, H, W)``: geometry g tinted by colours ``(G, 3)`` (see the module docstring)."""
    image = (
        maps.floor[:, None] * floor_rgb[:, :, None, None]
        + maps.wall[:, None] * wall_rgb[:, :, None, None]
        + maps.object[:, None] * object_rgb[:, :, None, None]
        + maps.constant
    )
    return to_uint8(image)


def to_uint8(image: torch.Tensor) -> torch.Tensor:
    """[0, 1] floats -> uint8 0-255, rounded."""
    return image.mul(255.0).add_(0.5).clamp_(0, 255).to(torch.uint8)
