/* httpdate: the three date forms a recipient must accept. */
#include "workers/httpdate.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char wdays[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

static void put2(char *p, int v) {
    p[0] = (char)('0' + v / 10);
    p[1] = (char)('0' + v % 10);
}

void httpdate_format(time_t t, char *out) {
    struct tm tm;
    gmtime_r(&t, &tm);
    memcpy(out, wdays[tm.tm_wday], 3);
    memcpy(out + 3, ", ", 2);
    put2(out + 5, tm.tm_mday);
    out[7] = ' ';
    memcpy(out + 8, months[tm.tm_mon], 3);
    out[11] = ' ';
    int y = tm.tm_year + 1900;
    put2(out + 12, y / 100 % 100);
    put2(out + 14, y % 100);
    out[16] = ' ';
    put2(out + 17, tm.tm_hour);
    out[19] = ':';
    put2(out + 20, tm.tm_min);
    out[22] = ':';
    put2(out + 23, tm.tm_sec);
    memcpy(out + 25, " GMT", 5);
}

static int month_index(const char *m) {
    for (int i = 0; i < 12; i++)
        if (strncmp(m, months[i], 3) == 0) return i;
    return -1;
}

/* Reads exactly n digits. */
static bool digits(const char **p, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9') return false;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return true;
}

static bool lit(const char **p, const char *s) {
    size_t n = strlen(s);
    if (strncmp(*p, s, n) != 0) return false;
    *p += n;
    return true;
}

/* "HH:MM:SS" */
static bool clock_time(const char **p, struct tm *tm) {
    return digits(p, 2, &tm->tm_hour) && lit(p, ":") && digits(p, 2, &tm->tm_min) && lit(p, ":") &&
           digits(p, 2, &tm->tm_sec);
}

static bool month(const char **p, struct tm *tm) {
    if (strlen(*p) < 3 || (tm->tm_mon = month_index(*p)) < 0) return false;
    *p += 3;
    return true;
}

int httpdate_parse(const char *s, size_t len, time_t *out) {
    char buf[64];
    struct tm tm;
    int year;
    /* 24 is the shortest valid form (asctime); a NUL byte is not a date */
    if (len < 24 || len >= sizeof buf || memchr(s, '\0', len)) return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    memset(&tm, 0, sizeof tm);
    const char *p = buf, *comma = strchr(buf, ',');

    if (comma && comma - buf == 3) {
        /* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
        p = comma + 1;
        if (!(lit(&p, " ") && digits(&p, 2, &tm.tm_mday) && lit(&p, " ") && month(&p, &tm) &&
              lit(&p, " ") && digits(&p, 4, &year) && lit(&p, " ") && clock_time(&p, &tm) &&
              lit(&p, " GMT") && !*p))
            return -1;
    } else if (comma) {
        /* RFC 850: Sunday, 06-Nov-94 08:49:37 GMT */
        p = comma + 1;
        if (!(lit(&p, " ") && digits(&p, 2, &tm.tm_mday) && lit(&p, "-") && month(&p, &tm) &&
              lit(&p, "-") && digits(&p, 2, &year) && lit(&p, " ") && clock_time(&p, &tm) &&
              lit(&p, " GMT") && !*p))
            return -1;
        year += year < 70 ? 2000 : 1900; /* RFC 9110: 50-year window; close enough */
    } else {
        /* asctime: Sun Nov  6 08:49:37 1994 */
        p = buf + 3;
        if (!(lit(&p, " ") && month(&p, &tm) && lit(&p, " "))) return -1;
        int daylen = 2;
        if (*p == ' ') p++, daylen = 1; /* space-padded day: "Nov  6" */
        if (!(digits(&p, daylen, &tm.tm_mday) && lit(&p, " ") && clock_time(&p, &tm) &&
              lit(&p, " ") && digits(&p, 4, &year) && !*p))
            return -1;
    }
    if (tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
        return -1;
    tm.tm_year = year - 1900;
    *out = timegm(&tm);
    return 0;
}
