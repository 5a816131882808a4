#version 450
// Fills a buffer with value + index: the smallest shader that proves the whole path (SPIR-V
// build, pipeline, descriptor, dispatch, readback) on any Vulkan device, lavapipe included.
layout(local_size_x = 64) in;
layout(std430, binding = 0) writeonly buffer Out { uint data[]; };
layout(push_constant) uniform Params { uint n; uint value; } p;

void main() {
  uint i = gl_GlobalInvocationID.x;
  if (i < p.n) data[i] = p.value + i;
}
