//! The 16550 UART on COM1 (I/O port 0x3F8), polled, 115200 baud 8N1.

use super::cpu::{inb, outb};

const COM1: u16 = 0x3f8;
const LINE_STATUS: u16 = COM1 + 5;
/// Line status register: transmitter holding register empty.
const LSR_THR_EMPTY: u8 = 1 << 5;

/// Programs COM1: 115200 baud (divisor 1), 8 data bits, no parity, 1 stop bit, FIFOs on,
/// interrupts off.
pub fn init() {
    // SAFETY: COM1 is the kernel's console device; nothing else in the kernel programs it.
    unsafe {
        outb(COM1 + 1, 0x00); // interrupt enable: none
        outb(COM1 + 3, 0x80); // DLAB on
        outb(COM1, 0x01); // divisor low: 115200
        outb(COM1 + 1, 0x00); // divisor high
        outb(COM1 + 3, 0x03); // 8N1, DLAB off
        outb(COM1 + 2, 0xc7); // FIFO enable, clear, 14-byte threshold
        outb(COM1 + 4, 0x03); // DTR, RTS
    }
}

/// Writes one byte, waiting for the transmitter.
pub fn write_byte(byte: u8) {
    // SAFETY: reading the line status register of the kernel's own console has no effect
    // beyond reporting status.
    while unsafe { inb(LINE_STATUS) } & LSR_THR_EMPTY == 0 {
        super::cpu::pause();
    }
    // SAFETY: writing the transmit register of the kernel's own console.
    unsafe { outb(COM1, byte) }
}
