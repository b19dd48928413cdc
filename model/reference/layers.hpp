// CPU reference of GPT-2's common layers: plain C++, accumulation in double, llm.c style
// pairs X_forward(out, ..., inp, params...) / X_backward(dinp, dparams..., dout, saved...)
// with the argument order and accumulation rules of Ops (model/ops.hpp):
//   - parameter gradients accumulate (+=);
//   - matmul_backward and gelu_backward overwrite dinp;
//   - layernorm_backward, encoder_backward and residual_backward accumulate (+=) into
//     their input gradients, because those add into the residual stream.
// Used by the kernel tests, `attnscope check` and the attention variants' references;
// itself checked by finite differences (tests/test_reference_gradients.cpp).
#pragma once
#include <cstddef>

namespace attnscope::reference {

// out[b,t,:] = wte[tokens[b,t],:] + wpe[t,:].
void encoder_forward(float* out, const int* tokens, const float* wte, const float* wpe, int B,
                     int T, int C);
void encoder_backward(float* dwte, float* dwpe, const float* dout, const int* tokens, int B, int T,
                      int C);

// Over N rows of C: out = (inp - mean) * rstd * weight + bias; saves mean, rstd (N).
void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                       const float* bias, int N, int C);
void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                        const float* inp, const float* weight, const float* mean, const float* rstd,
                        int N, int C);

// out[N,OC] = inp[N,C] · weight[OC,C]ᵀ + bias[OC]; bias may be null.
void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int N,
                    int C, int OC);
// dinp = dout·weight (overwritten); dweight += doutᵀ·inp; dbias += Σ_n dout (if non-null).
void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int N, int C, int OC);

// One slice of Ops::gemm: c[M,N] = alpha · op(a)[M,K] · op(b)[K,N] + beta · c, row-major,
// op(a) = aᵀ when trans_a (a stored [K,M]), op(b) = bᵀ when trans_b (b stored [N,K]).
// c is not read when beta == 0.
void gemm(float* c, const float* a, const float* b, int M, int N, int K, bool trans_a, bool trans_b,
          float alpha, float beta);

// GELU, tanh approximation. gelu_backward overwrites dinp.
void gelu_forward(float* out, const float* inp, size_t n);
void gelu_backward(float* dinp, const float* inp, const float* dout, size_t n);

// out = a + b; backward: da += dout, db += dout.
void residual_forward(float* out, const float* a, const float* b, size_t n);
void residual_backward(float* da, float* db, const float* dout, size_t n);
// dst += src (Ops::accumulate).
void accumulate(float* dst, const float* src, size_t n);

// Softmax cross-entropy over the first V of Vp logits per row: losses[n] = -log p[n, t_n].
void crossentropy_forward(float* losses, const float* logits, const int* targets, int N, int V,
                          int Vp);
// dlogits = (p - onehot) · dlosses[n] over the first V columns, 0 in the padding
// (overwritten).
void crossentropy_backward(float* dlogits, const float* dlosses, const float* logits,
                           const int* targets, int N, int V, int Vp);
// As Ops::fused_classifier: losses, then logits overwritten by their gradient with
// dlosses = 1/N (the mean loss).
void fused_classifier(float* logits, float* losses, const int* targets, int N, int V, int Vp);

// Σ x², accumulated in double.
double squared_norm(const float* x, size_t n);
// min(1, clip / sqrt(norm_sq)); 1 when clip <= 0.
float clip_scale(double norm_sq, float clip);
// AdamW (llm.c): g = grads·grad_scale; m, v updated; bias-corrected with 1 - beta^step;
// params -= lr · (m̂ / (√v̂ + eps) + weight_decay · params). step counts from 1.
void adamw_update(float* params, const float* grads, float* m, float* v, size_t n, float lr,
                  float beta1, float beta2, float eps, float weight_decay, int step,
                  float grad_scale);

}  // namespace attnscope::reference
