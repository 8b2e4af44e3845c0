"""The GRU recurrence (Keras' `reset_after` formulation) with a hand-written backward pass.

Why: autodiff of a `tf.scan` accumulates the recurrent kernel's gradient
inside the loop, one [units, 3 units] outer product and add per frame (1000
per 4 s window at 250 frames/s): most of a solo-model training step went
there. The backward pass here keeps only what must be sequential in the loop
(the gradient of the state, one small matmul per frame) and computes the
kernel's and bias's gradients after it as one large matmul and one sum.
Same numbers as autodiff of `gru_step` (tested), less work.

Shapes: F frames, B batch, u units. `projected` is the input projection of
every frame, x W_in + b_in, computed outside the loop as one matmul.
"""

import tensorflow as tf


def _gates(h, xp, kernel, bias, compute_dtype):
  """Gate values of one step: (z, r, candidate, hp_candidate), each [B, u]."""
  u = h.shape[-1]
  if compute_dtype == tf.float32:
    hp = tf.matmul(h, kernel) + bias
  else:  # The mixed precision of the decoder: the product in bfloat16.
    hp = tf.cast(tf.matmul(tf.cast(h, compute_dtype), tf.cast(kernel, compute_dtype)),
                 tf.float32) + bias
  z = tf.sigmoid(xp[:, :u] + hp[:, :u])
  r = tf.sigmoid(xp[:, u:2 * u] + hp[:, u:2 * u])
  hp_c = hp[:, 2 * u:]
  candidate = tf.tanh(xp[:, 2 * u:] + r * hp_c)
  return z, r, candidate, hp_c


def gru_step(h, xp, kernel, bias, compute_dtype=tf.float32):
  """One GRU step. h: [B, u]; xp: [B, 3u]; kernel: [u, 3u]; bias: [3u]. Returns [B, u]."""
  z, _, candidate, _ = _gates(h, xp, kernel, bias, compute_dtype)
  return z * h + (1.0 - z) * candidate


def gru_recurrence_autodiff(projected, state, kernel, bias, compute_dtype="float32"):
  """`gru_recurrence` by autodiff through `tf.scan`: the definition (tests, the bench's old step)."""
  dtype = tf.as_dtype(compute_dtype)
  return tf.scan(lambda h, xp: gru_step(h, xp, kernel, bias, dtype), projected, initializer=state)


def gru_recurrence(projected, state, kernel, bias, compute_dtype="float32"):
  """Runs the GRU over time.

  Args:
    projected: [F, B, 3u] input projections (time-major).
    state: [B, u] initial state.
    kernel: [u, 3u] recurrent kernel; bias: [3u] recurrent bias.
    compute_dtype: 'float32' or 'bfloat16' for the recurrent matmul.

  Returns:
    [F, B, u] states after each frame (the last is the final state).
  """
  dtype = tf.as_dtype(compute_dtype)

  @tf.custom_gradient
  def run(projected, state, kernel, bias):

    def forward(carry, xp):
      h = carry[0]
      z, r, candidate, hp_c = _gates(h, xp, kernel, bias, dtype)
      return z * h + (1.0 - z) * candidate, z, r, candidate, hp_c

    zeros = tf.zeros_like(state)
    hs, zs, rs, cs, hp_cs = tf.scan(forward, projected, initializer=(state,) + (zeros,) * 4)

    def grad(d_hs):
      h_prev = tf.concat([state[tf.newaxis], hs[:-1]], axis=0)  # [F, B, u]
      kernel_t = tf.transpose(kernel)

      def backward(carry, elems):
        dh_next = carry[0]
        d_out, h0, z, r, c, hp_c = elems
        dh = dh_next + d_out
        da_z = dh * (h0 - c) * z * (1.0 - z)
        da_c = dh * (1.0 - z) * (1.0 - c * c)
        da_r = da_c * hp_c * r * (1.0 - r)
        d_hp = tf.concat([da_z, da_r, da_c * r], axis=-1)
        if dtype == tf.float32:
          back = tf.matmul(d_hp, kernel_t)
        else:
          back = tf.cast(tf.matmul(tf.cast(d_hp, dtype), tf.cast(kernel_t, dtype)), tf.float32)
        return dh * z + back, tf.concat([da_z, da_r, da_c], axis=-1)

      d_state, d_projected = tf.scan(
          backward, (d_hs, h_prev, zs, rs, cs, hp_cs),
          initializer=(tf.zeros_like(state), tf.zeros_like(projected[0])), reverse=True)
      u = state.shape[-1]
      d_hp = tf.concat([d_projected[..., :2 * u], d_projected[..., 2 * u:] * rs], axis=-1)
      # The kernel's gradient over all frames at once: [u, F*B] x [F*B, 3u].
      d_kernel = tf.matmul(tf.reshape(h_prev, [-1, u]), tf.reshape(d_hp, [-1, 3 * u]),
                           transpose_a=True)
      d_bias = tf.reduce_sum(d_hp, axis=[0, 1])
      return d_projected, d_state[0], d_kernel, d_bias

    return hs, grad

  return run(projected, state, kernel, bias)
