# Deterministic draws for redox-sim (sourced by /redoxsim/init).  Randomness comes ONLY from redoxsim.seed.
# draw K -> DRAW in 0..999:  lowbias32( (seed XOR (K+1)*0x9E3779B9) mod 2^32 ) mod 1000
# (lowbias32 is Chris Wellons' 32-bit integer hash).  32x32-bit products are split in 16-bit halves so that
# shell arithmetic (signed 64-bit) never overflows.  tests/e2e/test_guests_raw.py carries the same function in
# Python and predicts every boot.
M32=4294967295
mul32() { # mul32 A B -> R = A*B mod 2^32
    R=$(( ( ($1 * ($2 & 65535)) + ((($1 * ($2 >> 16)) & 65535) << 16) ) & M32 ))
}
mix32() { # mix32 X -> R
    local x=$1
    x=$(( x ^ (x >> 16) )); mul32 $x $((0x7feb352d)); x=$R
    x=$(( x ^ (x >> 15) )); mul32 $x $((0x846ca68b)); x=$R
    R=$(( x ^ (x >> 16) ))
}
draw() { # draw K -> DRAW (0..999)
    mul32 $(( $1 + 1 )) $((0x9E3779B9))
    mix32 $(( (SEED ^ R) & M32 ))
    DRAW=$(( R % 1000 ))
}
hex64() { # hex64 K -> H: a 16-digit uppercase hex word derived from draw K (register dumps, addresses)
    mul32 $(( $1 + 1 )) $((0x9E3779B9)); mix32 $(( (SEED ^ R ^ 0x5bd1e995) & M32 )); local a=$R
    mix32 $(( a ^ 0x27d4eb2f )); H=$(printf '%08X%08X' $a $R)
}
