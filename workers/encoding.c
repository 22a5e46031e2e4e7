/* encoding: Accept-Encoding parsed into q-values, and the choice. */
#include "workers/encoding.h"

#include <stdbool.h>
#include <strings.h>

void accept_enc_init(struct accept_enc *a) {
    a->gzip = a->br = a->identity = a->star = -1;
}

static bool ows(char c) {
    return c == ' ' || c == '\t';
}

/* A qvalue (RFC 9110 12.4.2: "0" ["." 0-3 digits] or "1" ["." 0-3 zeros])
 * in thousandths, or -1. */
static int qvalue(const char *p, size_t n) {
    if (n == 0 || (p[0] != '0' && p[0] != '1')) return -1;
    int q = (p[0] - '0') * 1000, scale = 100;
    if (n == 1) return q;
    if (p[1] != '.' || n > 5) return -1;
    for (size_t i = 2; i < n; i++, scale /= 10) {
        if (p[i] < '0' || p[i] > '9') return -1;
        q += (p[i] - '0') * scale;
    }
    return q > 1000 ? -1 : q;
}

void accept_enc_add(struct accept_enc *a, const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        /* one element: coding *( OWS ";" OWS param ) */
        while (i < n && (ows(s[i]) || s[i] == ',')) i++;
        size_t c0 = i;
        while (i < n && !ows(s[i]) && s[i] != ',' && s[i] != ';') i++;
        size_t clen = i - c0;
        int q = 1000;
        while (i < n && s[i] != ',') {
            while (i < n && (ows(s[i]) || s[i] == ';')) i++;
            size_t p0 = i;
            while (i < n && s[i] != ';' && s[i] != ',') i++;
            size_t pe = i;
            while (pe > p0 && ows(s[pe - 1])) pe--;
            if (pe - p0 >= 2 && (s[p0] == 'q' || s[p0] == 'Q') && s[p0 + 1] == '=') {
                int v = qvalue(s + p0 + 2, pe - p0 - 2);
                q = v < 0 || q < 0 ? -1 : v;
            }
        }
        if (!clen || q < 0) continue;
        const char *c = s + c0;
        int *slot = NULL;
        if ((clen == 4 && strncasecmp(c, "gzip", 4) == 0) ||
            (clen == 6 && strncasecmp(c, "x-gzip", 6) == 0))
            slot = &a->gzip;
        else if (clen == 2 && strncasecmp(c, "br", 2) == 0)
            slot = &a->br;
        else if (clen == 8 && strncasecmp(c, "identity", 8) == 0)
            slot = &a->identity;
        else if (clen == 1 && c[0] == '*')
            slot = &a->star;
        if (slot && *slot < 0) *slot = q;
    }
}

size_t accept_enc_rank(const struct accept_enc *a, unsigned offered, enum encoding out[2]) {
    int star = a->star;
    int br = a->br >= 0 ? a->br : star >= 0 ? star : 0;
    int gzip = a->gzip >= 0 ? a->gzip : star >= 0 ? star : 0;
    /* identity unnamed: acceptable, the least preferred */
    int identity = a->identity >= 0 ? a->identity : star >= 0 ? star : 1;
    size_t n = 0;
    bool use_br = (offered & ENC_BR) && br > 0 && br >= identity;
    bool use_gzip = (offered & ENC_GZIP) && gzip > 0 && gzip >= identity;
    bool br_first = use_br && (!use_gzip || br >= gzip);
    if (br_first) out[n++] = ENC_BR;
    if (use_gzip) out[n++] = ENC_GZIP;
    if (use_br && !br_first) out[n++] = ENC_BR;
    return n;
}

enum encoding accept_enc_choose(const struct accept_enc *a, unsigned offered) {
    enum encoding out[2];
    return accept_enc_rank(a, offered, out) ? out[0] : ENC_IDENTITY;
}
