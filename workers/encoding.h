/* encoding: content-coding negotiation (Accept-Encoding, RFC 9110 12.5.3). */
#ifndef PREFORKD_ENCODING_H
#define PREFORKD_ENCODING_H

#include <stddef.h>

/* The codings a server may offer, as bits of a mask. */
enum encoding {
    ENC_IDENTITY = 0,
    ENC_GZIP = 1,
    ENC_BR = 2,
};

/* What a request accepts: q-values in thousandths (0-1000), -1 for a
 * coding it does not name. */
struct accept_enc {
    int gzip, br, identity, star;
};

void accept_enc_init(struct accept_enc *a);
/* Adds one Accept-Encoding field line ("gzip;q=0.5, br;q=1, *;q=0"): codings
 * case-insensitive, "x-gzip" is gzip, parameters other than q ignored, an
 * element with a malformed q ignored, a coding named twice counts once (the
 * first). */
void accept_enc_add(struct accept_enc *a, const char *s, size_t n);
/* The coding to answer with among offered (ENC_GZIP | ENC_BR): the highest
 * q above 0, a coding preferred to identity at equal q and br to gzip;
 * ENC_IDENTITY when none is acceptable or identity is preferred. A coding
 * not named takes the q of "*" (none: not acceptable), and identity too
 * (none: acceptable, but any acceptable coding goes first), so identity is
 * refused only when named with q=0 or excluded by "*;q=0". */
enum encoding accept_enc_choose(const struct accept_enc *a, unsigned offered);
/* The offered codings the request takes before identity, best first (as
 * accept_enc_choose ranks them): the order to look for them in. Returns how
 * many (0: identity). */
size_t accept_enc_rank(const struct accept_enc *a, unsigned offered, enum encoding out[2]);

#endif
