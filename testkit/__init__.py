"""What tests and benchmarks need and a station install does not carry (not an installed
package; importable from the repository root): the analytic low-pass autoencoder, throw-away
stations, the plain NumPy reference of the DCT-fusion kernels."""
