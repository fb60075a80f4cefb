// Shared by winograd.cu and winograd4.cu: which tile and channel a transform's
// thread works on, and how it reads its tile.
//
// Every transform runs one thread per (tile, channel): element e = p * c + ch
// of a grid-stride loop, tile p = (b, ti, tj) in row-major order over
// (n, th, tw).  Memory is NHWC: x[b, y, x, ch] sits at ((b * h + y) * w + x) * c + ch.
#pragma once
#include "cuda_common.h"

struct TileChannel {
    index_t b, ti, tj, ch;
};

__device__ __forceinline__ TileChannel tile_channel(index_t e, index_t c, index_t th, index_t tw)
{
    index_t p = e / c;
    TileChannel t;
    t.ch = e % c;
    t.tj = p % tw;
    t.ti = (p / tw) % th;
    t.b = p / (tw * th);
    return t;
}

// d[r][s] = x[b, step*ti + first + r, step*tj + first + s, ch] for r, s < R,
// zero outside the (h, w) map: an input tile (first = -1, over the padding)
// or an output-gradient tile (first = 0).
template <typename T, int R>
__device__ __forceinline__ void read_tile(const T* x, T (&d)[R][R], TileChannel t, int step, int first,
                                          index_t h, index_t w, index_t c)
{
    for (int r = 0; r < R; ++r)
        for (int s = 0; s < R; ++s) {
            index_t row = step * t.ti + first + r, col = step * t.tj + first + s;
            bool inside = 0 <= row && row < h && 0 <= col && col < w;
            d[r][s] = inside ? x[((t.b * h + row) * w + col) * c + t.ch] : T(0);
        }
}
