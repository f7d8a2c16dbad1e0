/*
 * ed_graph_net: the bridge between the neutral op chain (ed_graph, what ONNX files become) and
 * edistill's layer stack (ed_stack + ed_net, what model files hold and members run).
 *
 * Graph -> net: Dense -> dense, Conv -> conv (square kernel, equal strides, the same padding on
 * every side), MaxPool / AveragePool -> maxpool / avgpool (square, equal strides, no padding),
 * GlobalAveragePool -> gap, Flatten -> flatten, Relu -> relu, an unfolded batch norm (AFFINE) ->
 * bn with running mean 0 and variance 1 - eps. A graph that is [Flatten] Dense (Relu Dense)* with
 * at most 16 Dense layers becomes a legacy MLP stack ("784,64,10"): the same file format and
 * kernels as an MLP trained here. Net -> graph: the reverse, after folding batch norm into the
 * layer before it (ed_net_fold_bn); dropout is dropped (inference).
 */
#ifndef ED_GRAPH_NET_H
#define ED_GRAPH_NET_H

#include "ed_error.h"
#include "ed_graph.h"
#include "ed_net.h"

/* Maps a finished graph onto a new ed_net (*out, caller owns). An op the stack cannot express is
 * refused (ED_EFORMAT) naming the op kind, its node name and why, e.g. "Conv 'c1': a 3x5 kernel
 * (the layer stack has square kernels)". *out is NULL on failure. */
int ed_graph_to_net(const ed_graph *g, ed_net **out, ed_err *err);

/* The finished graph of a model (batch norm folded, dropout dropped). NULL on allocation failure
 * or ED_E* in *err. */
ed_graph *ed_graph_from_net(const ed_net *m, ed_err *err);

#endif
